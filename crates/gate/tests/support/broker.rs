//! A real Mosquitto on a free loopback port, killed on drop.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

pub struct Mosquitto {
    child: Child,
    port: u16,
    _dir: TempDir,
}

impl Mosquitto {
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("mosquitto.conf");
        std::fs::write(
            &config,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                 log_type none\nuser root\n"
            ),
        )
        .unwrap();
        let child = Command::new("/usr/sbin/mosquitto")
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start /usr/sbin/mosquitto");
        let broker = Self {
            child,
            port,
            _dir: dir,
        };
        for _ in 0..250 {
            if tokio::net::TcpStream::connect(broker.address())
                .await
                .is_ok()
            {
                return broker;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("mosquitto did not start on port {port}");
    }

    pub fn address(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
