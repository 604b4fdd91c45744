//! A throwaway PostgreSQL cluster for tests: `initdb` + `pg_ctl` from the installed
//! binaries, in a temp dir, on a free loopback port, stopped and removed on drop.
//!
//! `initdb` refuses to run as root, and tests run as root in CI; then the cluster
//! directory is given to the `postgres` user and every binary runs through
//! `runuser -u postgres --`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tempfile::TempDir;

/// How long the server may take to accept connections after `pg_ctl start`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running PostgreSQL cluster owned by the test; dropping it stops the server and
/// deletes its files.
#[derive(Debug)]
pub struct TempPostgres {
    dir: Option<TempDir>,
    bin_dir: PathBuf,
    port: u16,
    run_as_postgres: bool,
}

impl TempPostgres {
    /// Creates and starts a cluster with trust authentication on 127.0.0.1.
    pub fn start() -> anyhow::Result<TempPostgres> {
        let bin_dir = find_bin_dir()?;
        let run_as_postgres = is_root();
        // A port found free can be taken before the server binds it; retry then.
        let mut last_error = None;
        for _ in 0..3 {
            match Self::start_once(&bin_dir, run_as_postgres) {
                Ok(pg) => return Ok(pg),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.expect("at least one attempt ran: this is a bug"))
    }

    /// [`TempPostgres::start`] on a blocking thread, for async tests.
    pub async fn start_async() -> anyhow::Result<TempPostgres> {
        tokio::task::spawn_blocking(Self::start).await?
    }

    fn start_once(bin_dir: &Path, run_as_postgres: bool) -> anyhow::Result<TempPostgres> {
        // The system temp dir, not $TMPDIR under /root, so the postgres user can reach it.
        let parent = if run_as_postgres {
            PathBuf::from("/tmp")
        } else {
            std::env::temp_dir()
        };
        let dir = tempfile::Builder::new()
            .prefix("charter-pg-")
            .tempdir_in(&parent)
            .context("creating the cluster directory")?;
        let port = free_port()?;
        let pg = TempPostgres {
            dir: Some(dir),
            bin_dir: bin_dir.to_owned(),
            port,
            run_as_postgres,
        };
        let root = pg.root().to_owned();
        let data = root.join("data");
        let socket_dir = root.join("sock");
        std::fs::create_dir(&socket_dir)?;
        if run_as_postgres {
            check(
                Command::new("chown")
                    .args(["-R", "postgres:"])
                    .arg(&root)
                    .output()?,
                "chown",
            )?;
        }
        let out = pg
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .output()
            .context("running initdb")?;
        check(out, "initdb")?;
        pg.pg_ctl_start()?;
        Ok(pg)
    }

    /// `pg_ctl start` on the cluster's data directory, waiting until it accepts
    /// connections.
    fn pg_ctl_start(&self) -> anyhow::Result<()> {
        let root = self.root();
        // fsync off: the cluster is thrown away, and tests should not wait on the disk.
        let server_options = format!(
            "-p {} -h 127.0.0.1 -k {} -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=200",
            self.port,
            root.join("sock").display()
        );
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(root.join("data"))
            .arg("-l")
            .arg(root.join("server.log"))
            .args(["-o", &server_options, "-w", "-t", "60", "start"])
            .output()
            .context("running pg_ctl start")?;
        if let Err(e) = check(out, "pg_ctl start") {
            let log = std::fs::read_to_string(root.join("server.log")).unwrap_or_default();
            bail!("{e}\nserver log:\n{log}");
        }
        self.wait_ready()
    }

    /// Stops the server (`pg_ctl stop -m fast`: open connections are terminated, as
    /// when a database is restarted or fails over), keeping its data for
    /// [`TempPostgres::start_again`].
    pub fn stop(&self) -> anyhow::Result<()> {
        let out = self.pg_ctl_stop("fast").context("running pg_ctl stop")?;
        check(out, "pg_ctl stop")
    }

    /// `pg_ctl stop` in `mode`, waiting for the server to go.
    fn pg_ctl_stop(&self, mode: &str) -> std::io::Result<Output> {
        self.command("pg_ctl")
            .arg("-D")
            .arg(self.root().join("data"))
            .args(["-m", mode, "-w", "-t", "60", "stop"])
            .output()
    }

    /// Starts the server stopped by [`TempPostgres::stop`] again, on the same port.
    pub fn start_again(&self) -> anyhow::Result<()> {
        self.pg_ctl_start()
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        self.database_url("postgres")
    }

    /// The URL of database `name` on this cluster.
    pub fn database_url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Creates an empty database and returns its URL, so tests can share a cluster.
    pub fn create_database(&self, name: &str) -> anyhow::Result<String> {
        let out = self
            .command("createdb")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                name,
            ])
            .output()
            .context("running createdb")?;
        check(out, "createdb")?;
        Ok(self.database_url(name))
    }

    /// The cluster's directory (data, socket, server log); removed on drop.
    pub fn dir(&self) -> &Path {
        self.root()
    }

    fn root(&self) -> &Path {
        self.dir
            .as_ref()
            .expect("the directory lives until drop: this is a bug")
            .path()
    }

    fn command(&self, binary: &str) -> Command {
        let program = self.bin_dir.join(binary);
        if self.run_as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            // runuser keeps the caller's cwd, which postgres may not be allowed to read.
            command.current_dir("/");
            command
        } else {
            Command::new(program)
        }
    }

    fn wait_ready(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let out = self
                .command("pg_isready")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                ])
                .output()
                .context("running pg_isready")?;
            if out.status.success() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("PostgreSQL did not become ready within {READY_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        if self.dir.is_some() {
            // Immediate mode: the data is thrown away, so there is nothing to flush.
            let result = self.pg_ctl_stop("immediate");
            if let Ok(out) = &result {
                if !out.status.success() {
                    eprintln!(
                        "TempPostgres: pg_ctl stop failed: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            }
        }
        // TempDir removes the directory when dropped here.
        self.dir.take();
    }
}

/// The directory of the PostgreSQL binaries: the newest `/usr/lib/postgresql/N/bin`,
/// else wherever `initdb` is on PATH.
fn find_bin_dir() -> anyhow::Result<PathBuf> {
    let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    candidates.sort();
    if let Some((_, bin)) = candidates.pop() {
        return Ok(bin);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
            return Ok(dir);
        }
    }
    bail!("PostgreSQL server binaries (initdb, pg_ctl) not found; install postgresql")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

fn check(out: Output, what: &str) -> anyhow::Result<()> {
    if out.status.success() {
        return Ok(());
    }
    bail!(
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
