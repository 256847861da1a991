//! Child processes of the local control plane, stopped by PID (never by name).
//!
//! Owned processes are spawned from one long-lived thread with a parent-death signal:
//! Linux delivers it when the *thread* that forked exits, so forking from short-lived
//! test threads would kill a control plane shared by the tests of one binary.

use std::fs::{self, File};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{Lifetime, LocalUpError, io};

pub struct ManagedProcess {
    child: Option<Child>,
    pid: u32,
}

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

fn spawner() -> &'static Mutex<mpsc::Sender<SpawnRequest>> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("localup-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("spawner thread starts");
        Mutex::new(tx)
    })
}

/// Spawns `cmd` so that it dies with this process (a parent-death signal, set from the
/// long-lived spawner thread): what tests use for every process they start.
pub fn spawn_owned(mut cmd: Command) -> std::io::Result<Child> {
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
        });
    }
    let (tx, rx) = mpsc::channel();
    spawner()
        .lock()
        .expect("spawner lock")
        .send((cmd, tx))
        .expect("spawner alive");
    rx.recv().expect("spawner replies")
}

impl ManagedProcess {
    pub fn spawn(
        command: &[String],
        log: &Path,
        lifetime: Lifetime,
    ) -> Result<ManagedProcess, LocalUpError> {
        let out = File::create(log).map_err(io(format!("creating {}", log.display())))?;
        let err = out.try_clone().map_err(io("duplicating log handle"))?;
        let mut cmd = Command::new(&command[0]);
        cmd.args(&command[1..])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        // Own process group: a Ctrl-C in the terminal reaches `kubefed demo`, which then
        // stops these in order, instead of killing etcd under the API servers.
        cmd.process_group(0);
        let child = match lifetime {
            Lifetime::Detached => cmd.spawn(),
            Lifetime::Owned => spawn_owned(cmd),
        }
        .map_err(io(format!("starting {}", command[0])))?;
        Ok(ManagedProcess {
            pid: child.id(),
            child: Some(child),
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// `Some(status)` once the process has exited.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// SIGTERM, up to 10 s to exit, then SIGKILL; always reaps.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        let _ = kill(Pid::from_raw(self.pid as i32), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// SIGKILL, as a crash; always reaps.
    pub fn kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Sends `signal` (SIGSTOP, SIGCONT, ...) to a process that still runs.
    pub fn signal(&mut self, signal: Signal) -> std::io::Result<()> {
        if self.try_exit().is_some() || self.child.is_none() {
            return Err(std::io::Error::other("the process has exited"));
        }
        kill(Pid::from_raw(self.pid as i32), signal).map_err(std::io::Error::from)
    }

    /// Forgets the process without stopping it.
    pub fn release(mut self) {
        self.child.take();
    }
}

/// Stops `pid` if it still runs `exe`; true if it was running and is now gone.
pub fn stop_pid_if_running(pid: u32, exe: &str) -> bool {
    if !runs(pid, exe) {
        return false;
    }
    let p = Pid::from_raw(pid as i32);
    let _ = kill(p, Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = kill(p, Signal::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && alive(pid) {
        std::thread::sleep(Duration::from_millis(50));
    }
    !alive(pid)
}

fn runs(pid: u32, exe: &str) -> bool {
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
    alive(pid) && argv0 == exe.as_bytes()
}

/// Alive and not a zombie.
pub fn alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name, which may contain spaces.
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}
