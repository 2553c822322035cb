//! A flame graph of one worker process under load: `perf record` (Debian's `linux-perf`) samples it
//! while a measurement runs, and `inferno` folds the stacks and draws them as SVG.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::Context;
use tokio::process::{Child, Command};

/// Samples a second per thread: enough for a measurement of seconds, little enough that the profile
/// does not itself become the load.
const FREQUENCY: &str = "499";

/// A `perf record` running against one process.
pub struct Recording {
    perf: Child,
    data: PathBuf,
}

impl Recording {
    /// Starts sampling `pid` (CPU clock, DWARF call stacks: release builds keep no frame pointers).
    pub fn start(pid: u32, data: &Path) -> anyhow::Result<Self> {
        let perf = Command::new("perf")
            .args(["record", "-q", "-e", "cpu-clock", "-F", FREQUENCY])
            .args(["--call-graph", "dwarf,16384", "-p", &pid.to_string(), "-o"])
            .arg(data)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("starting perf (Debian's linux-perf)")?;
        Ok(Self {
            perf,
            data: data.to_path_buf(),
        })
    }

    /// Stops sampling and draws the flame graph titled `title` at `svg`, with its folded stacks beside
    /// it (`.folded`: one line per stack, for reading shares without a browser).
    pub async fn finish(mut self, title: &str, svg: &Path) -> anyhow::Result<()> {
        let pid = self.perf.id().context("perf exited early")?;
        // perf writes its data on SIGINT; a kill would leave it unreadable.
        Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .await?;
        self.perf.wait().await?;
        let script = Command::new("perf")
            .args(["script", "-i"])
            .arg(&self.data)
            .stderr(Stdio::null())
            .output()
            .await
            .context("perf script")?;
        anyhow::ensure!(script.status.success(), "perf script failed");
        let _ = std::fs::remove_file(&self.data);
        let mut folded = Vec::new();
        let mut folder = inferno::collapse::perf::Folder::default();
        inferno::collapse::Collapse::collapse(&mut folder, &script.stdout[..], &mut folded)
            .context("folding perf's stacks")?;
        std::fs::write(svg.with_extension("folded"), &folded)?;
        let mut options = inferno::flamegraph::Options::default();
        options.title = title.to_string();
        options.count_name = "samples".to_string();
        // Frames narrower than a pixel are left out: the graph stays readable and a few hundred KiB.
        options.min_width = 1.0;
        let out = std::fs::File::create(svg)?;
        inferno::flamegraph::from_reader(&mut options, &folded[..], out)
            .context("drawing the flame graph")?;
        Ok(())
    }
}
