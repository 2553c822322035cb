//! Configuration that refuses to start wrong: outside `PASARELA_PROFILE=demo`, a worker with no vendor
//! settings exits at once, naming every variable it lacks, instead of starting "healthy" against the
//! simulator's demo endpoints.

use std::process::Command;

use pasarela_e2e::binary;

/// Runs `worker` with only the settings that are not about vendors; returns its exit and stderr.
fn start_bare(worker: &str, extra: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = Command::new(binary(worker))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
        .env(
            "DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/pasarela_unused",
        )
        .env("PASARELA_SECRET_KEY", pasarela_e2e::TEST_SECRET_KEY)
        .envs(extra.iter().copied())
        .output()
        .expect("running the worker");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_worker_without_its_vendor_settings_exits_naming_every_missing_variable() {
    for (worker, missing) in [
        (
            "otp-send",
            &[
                "ALDEAMO_BASE_URL",
                "ALDEAMO_PASSWORD",
                "ALDEAMO_USER",
                "DANACONNECT_BASE_URL",
                "DANACONNECT_COMPANY",
                "DANACONNECT_PASSWORD",
                "DANACONNECT_USER",
            ][..],
        ),
        (
            "vendor-call",
            &[
                "GESTOPAGO_AES_IV",
                "GESTOPAGO_AES_KEY",
                "GESTOPAGO_BASE_URL",
                "GESTOPAGO_CODIGO_DISPOSITIVO",
                "GESTOPAGO_ID_DISTRIBUIDOR",
                "GESTOPAGO_PASSWORD",
                "GESTOPAGO_TOKEN_PATH",
                "NUMROT_BASE_URL",
                "NUMROT_PASSWORD",
                "NUMROT_USERNAME",
            ][..],
        ),
        (
            "doc-sign",
            &[
                "PASARELA_INGRESS_PUBLIC_URL",
                "SIGNING_BASE_URL",
                "SIGNING_CLIENT_ID",
                "SIGNING_CLIENT_SECRET",
                "SIGNING_PASSWORD",
                "SIGNING_USERNAME",
            ][..],
        ),
    ] {
        let (code, stderr) = start_bare(worker, &[]);
        println!("{worker}: exit {code:?}: {}", stderr.trim());
        assert_ne!(
            code,
            Some(0),
            "{worker} started without its vendor settings"
        );
        assert!(code.is_some(), "{worker} was killed rather than exiting");
        let named = missing.join(", ");
        assert!(stderr.contains(&named), "{worker} names {named}:\n{stderr}");
        assert!(stderr.contains("PASARELA_PROFILE=demo"), "{stderr}");
    }
}

/// A variable that is set is not named; the others still are.
#[test]
fn a_set_variable_is_not_named() {
    let (code, stderr) = start_bare("vendor-call", &[("NUMROT_PASSWORD", "x")]);
    assert_ne!(code, Some(0));
    assert!(!stderr.contains("NUMROT_PASSWORD"), "{stderr}");
    assert!(stderr.contains("NUMROT_USERNAME"), "{stderr}");
}
