//! Child processes of the bench: pinned to a core with `taskset`, logged to a file,
//! killed on drop.

use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{BenchError, Result, io};

/// A running child process, killed when dropped.
#[derive(Debug)]
pub struct Pinned {
    child: Child,
}

impl Pinned {
    /// Starts `program args…` on CPU `core` (`taskset -c core`), stdout+stderr into `log`.
    ///
    /// # Errors
    /// When the log cannot be created or the process cannot be started.
    pub fn start(
        name: &str,
        core: usize,
        program: &Path,
        args: &[String],
        envs: &[(&str, String)],
        log: &Path,
    ) -> Result<Self> {
        let out = std::fs::File::create(log).map_err(io(format!("creating {}", log.display())))?;
        let err = out.try_clone().map_err(io("cloning a log handle"))?;
        let mut command = Command::new("taskset");
        command
            .arg("-c")
            .arg(core.to_string())
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        for (key, value) in envs {
            command.env(key, value);
        }
        let child = command
            .spawn()
            .map_err(io(format!("starting {name} ({})", program.display())))?;
        Ok(Self { child })
    }

    /// The process id (taskset execs the program, so it is the program's).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// A loopback TCP port free right now (bound to port 0, then released).
///
/// # Errors
/// When no port can be bound.
pub fn free_tcp_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io("binding a free port"))?;
    Ok(listener
        .local_addr()
        .map_err(io("reading a bound port"))?
        .port())
}

/// A loopback UDP port free right now.
///
/// # Errors
/// When no port can be bound.
pub fn free_udp_port() -> Result<u16> {
    let socket = UdpSocket::bind("127.0.0.1:0").map_err(io("binding a free UDP port"))?;
    Ok(socket
        .local_addr()
        .map_err(io("reading a bound port"))?
        .port())
}

/// Waits until `addr` accepts TCP connections and `ready()` holds.
///
/// # Errors
/// [`BenchError::NotReady`] after `timeout`.
pub fn wait_ready(
    name: &str,
    addr: SocketAddr,
    timeout: Duration,
    mut ready: impl FnMut() -> bool,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() && ready() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(BenchError::NotReady(name.to_owned()))
}
