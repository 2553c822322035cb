"""Checks docker-compose.yml with compose-spec (PyPI: Python bindings of the compose_spec crate, a
strict parser of the Compose Specification) and against the code: one image built once, every
published port on 127.0.0.1, every mounted file present, every variable one the code reads, a restart
policy on every service; deploy/Dockerfile's production image; and that every pasarela metric the
Grafana dashboards and the Prometheus rules query is one the code describes."""

import pathlib
import re
import sys

import yaml
from compose_spec import PyCompose

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Variables read by libraries and images rather than by pasarela's own code.
OUTSIDE = {
    "OTEL_SERVICE_NAME", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "RUST_LOG",
    "POSTGRES_PASSWORD", "POSTGRES_DB", "GRAFANA_READER_PASSWORD",
}


def fail(problems):
    for p in problems:
        print(f"deploy-check: {p}")
    sys.exit(1)


def code_text():
    return "\n".join(
        p.read_text() for d in ("shared", "workers", "tools")
        for p in (ROOT / d).rglob("*.rs") if "target" not in p.parts
    )


class Plain(yaml.SafeDumper):
    """Writes every value out in full: no anchors or aliases."""

    def ignore_aliases(self, data):
        return True


def main():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    # The parser does not apply YAML merge keys (`<<: *worker`), which Compose does: PyYAML applies
    # them first, and the parser reads the result.
    try:
        PyCompose.from_yaml(yaml.dump(compose, Dumper=Plain, sort_keys=False))
    except ValueError as e:
        fail([f"compose: {e}"])
    services = compose["services"]
    code = code_text()
    problems = []
    builds = [n for n, s in services.items() if "build" in s]
    images = {s.get("image") for n, s in services.items() if "build" in s}
    if len(builds) != 1:
        problems.append(f"one service should build the image, not {builds}")
    ours = [n for n, s in services.items() if s.get("image") in images]
    for name, svc in services.items():
        if svc.get("restart") not in ("unless-stopped", "always", "on-failure"):
            problems.append(f"{name}: no restart policy")
        for port in svc.get("ports", []):
            if not str(port).startswith("127.0.0.1:"):
                problems.append(f"{name}: port {port} is published on every interface")
        for volume in svc.get("volumes", []):
            host = str(volume).split(":")[0]
            if host.startswith(".") and not (ROOT / host).exists():
                problems.append(f"{name}: mounts {host}, which does not exist")
        if name in ours:
            for var in svc.get("environment", {}):
                if var not in OUTSIDE and f'"{var}"' not in code:
                    problems.append(f"{name}: {var} is read by no code")
            command = svc.get("command", [None])[0]
            if not (ROOT / "workers" / command).exists() and command not in ("vendor-sim", "pasarela"):
                problems.append(f"{name}: runs {command}, which is no binary of this repository")
    docker = (ROOT / "deploy/Dockerfile").read_text()
    runtime = docker.split("AS runtime", 1)[1].split("AS demo", 1)[0]
    if "--locked" not in docker:
        problems.append("deploy/Dockerfile: cargo build without --locked")
    if not re.search(r"^USER \d+(:\d+)?$", runtime, re.M):
        problems.append("deploy/Dockerfile: the runtime image's USER is not numeric")
    if "vendor-sim" in runtime:
        problems.append("deploy/Dockerfile: the production image carries the simulator")
    problems += unknown_metrics()
    if problems:
        fail(problems)
    ports = sum(len(s.get("ports", [])) for s in services.values())
    print(f"compose: compose-spec parsed it; {len(services)} services, {len(ours)} on the one image built by "
          f"{builds[0]}; {ports} ports all on 127.0.0.1; restart policies, mounts and variables consistent "
          f"with the code; every metric the dashboard and rules query is recorded; Dockerfile: --locked, numeric USER, no simulator in the runtime image")


def unknown_metrics():
    catalogue = (ROOT / "shared/src/runtime/catalogue.rs").read_text()
    known = set(re.findall(r'"(pasarela_[a-z_]+)"', catalogue))
    problems = []
    # The Prometheus dashboard and rules (otp-reports.json queries PostgreSQL, not metrics).
    queried = [ROOT / "deploy/grafana/dashboards/pasarela.json", ROOT / "deploy/prometheus/rules.yml"]
    for path in queried:
        for name in set(re.findall(r"\b(pasarela_[a-z_]+)", path.read_text())):
            base = re.sub(r"_(bucket|count|sum)$", "", name)
            if base not in known:
                problems.append(f"{path.relative_to(ROOT)}: queries {name}, which no code records")
    return problems


if __name__ == "__main__":
    main()
