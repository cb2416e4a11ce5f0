//! The `Shim` side: the `start` and `delete` actions and the server's lifetime, driven by
//! [`crate::bootstrap`] through the `containerd_shim::Shim` trait.

use std::path::Path;
use std::sync::Arc;

use containerd_shim::api::DeleteResponse;
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::{Config, ExitSignal, Flags, StartOpts};

use crate::sandbox;
use crate::service::Service;

/// The shim of one container, or of one pod.
pub struct RunscShim {
    namespace: String,
    debug: bool,
    exit: Arc<ExitSignal>,
}

/// Which shim a new container joins: its pod's, or its own.
fn grouping(id: &str) -> String {
    // `start` runs with the bundle as its working directory.
    sentry::boot::spec::load(Path::new("."))
        .ok()
        .and_then(|s| s.annotations().clone())
        .and_then(|a| a.get(sentry::boot::spec::SANDBOX_ID).cloned())
        .filter(|g| !g.is_empty())
        .unwrap_or_else(|| id.to_owned())
}

impl containerd_shim::Shim for RunscShim {
    type T = Service;

    fn new(_runtime_id: &str, args: &Flags, _config: &mut Config) -> Self {
        RunscShim {
            namespace: args.namespace.clone(),
            debug: args.debug,
            exit: Arc::new(ExitSignal::default()),
        }
    }

    fn start_shim(&mut self, opts: StartOpts) -> containerd_shim::Result<String> {
        let grouping = grouping(&opts.id);
        let (_, address) = containerd_shim::spawn(opts, &grouping, Vec::new())?;
        containerd_shim::util::write_address(&address)?;
        Ok(address)
    }

    fn delete_shim(&mut self) -> containerd_shim::Result<DeleteResponse> {
        // containerd runs `delete` in the bundle when the shim is gone: clean up from disk.
        let bundle =
            std::env::current_dir().map_err(|e| containerd_shim::Error::Other(e.to_string()))?;
        sandbox::kill_recorded(&bundle);
        let cgroups_path = sentry::boot::spec::load(&bundle)
            .ok()
            .and_then(|s| s.linux().as_ref().and_then(|l| l.cgroups_path().clone()));
        if let Some(path) = cgroups_path {
            if let Ok(Some(cg)) =
                sentry::boot::cgroup::SandboxCgroup::create(&path.to_string_lossy())
            {
                cg.remove();
            }
        }
        let rootfs = bundle.join("rootfs");
        if let Err(e) = containerd_shim::mount::umount_recursive(rootfs.to_str(), libc::MNT_DETACH)
        {
            log::warn!("unmounting {}: {e}", rootfs.display());
        }
        let mut resp = DeleteResponse::new();
        resp.exit_status = 128 + libc::SIGKILL as u32;
        resp.exited_at = containerd_shim::protos::protobuf::MessageField::some(
            containerd_shim::util::timestamp()?,
        );
        Ok(resp)
    }

    fn wait(&mut self) {
        self.exit.wait();
    }

    fn create_task_service(&self, publisher: RemotePublisher) -> Service {
        Service::new(&self.namespace, publisher, self.debug, self.exit.clone())
    }
}
