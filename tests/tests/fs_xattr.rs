//! Extended attributes and POSIX ACLs on tmpfs (`/dev/shm`), compared with native Linux:
//! user attributes with the create/replace flags and Linux's errors, the ACL attributes'
//! validation, the mode they set, chmod's change to the mask, default-ACL inheritance by new
//! files and directories, and access checks by named-user and named-group entries (as
//! `nobody`). Each run works in a fresh directory of its own under `/dev/shm`.
//!
//! Needs Debian's python3 and root (for setuid to nobody); otherwise `SKIPPED: reason`.

use std::path::Path;

const SCRIPT: &str = r#"
import os, struct, tempfile, shutil
os.umask(0o022)
d = tempfile.mkdtemp(dir='/dev/shm')
os.chmod(d, 0o755)
out = []
def r(label, f):
    try:
        v = f()
        out.append(f"{label}: {v!r}")
    except OSError as e:
        out.append(f"{label}: errno {e.errno}")
U = 0xffffffff
def acl(*ents):
    return struct.pack('<I', 2) + b''.join(struct.pack('<HHI', *e) for e in ents)
A = 'system.posix_acl_access'
D = 'system.posix_acl_default'
p = os.path.join(d, 'f')
open(p, 'w').close()
os.chmod(p, 0o644)
r('set user', lambda: os.setxattr(p, 'user.a', b'xyz'))
r('get user', lambda: os.getxattr(p, 'user.a'))
r('create existing', lambda: os.setxattr(p, 'user.a', b'1', os.XATTR_CREATE))
r('replace missing', lambda: os.setxattr(p, 'user.b', b'1', os.XATTR_REPLACE))
r('empty value', lambda: os.setxattr(p, 'user.e', b''))
r('list', lambda: sorted(os.listxattr(p)))
r('remove', lambda: os.removexattr(p, 'user.a'))
r('remove again', lambda: os.removexattr(p, 'user.a'))
r('get missing', lambda: os.getxattr(p, 'user.a'))
r('bad prefix', lambda: os.setxattr(p, 'foo.a', b'1'))
r('system other', lambda: os.setxattr(p, 'system.foo', b'1'))
r('long name', lambda: os.setxattr(p, 'user.' + 'a' * 251, b'1'))
r('too big', lambda: os.setxattr(p, 'user.big', b'x' * 65537))
r('bad flags', lambda: os.setxattr(p, 'user.f', b'1', 4))
full = acl((1, 6, U), (2, 4, 65534), (4, 4, U), (0x10, 7, U), (0x20, 4, U))
r('set acl', lambda: os.setxattr(p, A, full))
r('mode', lambda: oct(os.stat(p).st_mode & 0o7777))
r('acl back', lambda: os.getxattr(p, A) == full)
r('acl listed', lambda: A in os.listxattr(p))
r('chmod', lambda: os.chmod(p, 0o460))
r('acl after chmod', lambda: os.getxattr(p, A).hex())
r('minimal acl', lambda: os.setxattr(p, A, acl((1, 7, U), (4, 5, U), (0x20, 4, U))))
r('mode', lambda: oct(os.stat(p).st_mode & 0o7777))
r('folded', lambda: os.getxattr(p, A))
r('default on file', lambda: os.setxattr(p, D, full))
r('remove default on file', lambda: os.removexattr(p, D))
r('no mask', lambda: os.setxattr(p, A, acl((1, 6, U), (2, 4, 65534), (4, 4, U), (0x20, 4, U))))
r('bad version', lambda: os.setxattr(p, A, struct.pack('<I', 1) + full[4:]))
r('short', lambda: os.setxattr(p, A, full[:-1]))
r('bad perm', lambda: os.setxattr(p, A, acl((1, 8, U), (4, 4, U), (0x20, 4, U))))
r('remove absent acl', lambda: os.removexattr(p, A))
sub = os.path.join(d, 'sub')
os.mkdir(sub, 0o755)
dflt = acl((1, 7, U), (2, 5, 65534), (4, 5, U), (0x10, 7, U), (0x20, 5, U))
r('set default', lambda: os.setxattr(sub, D, dflt))
os.umask(0o077)
c = os.path.join(sub, 'c')
os.close(os.open(c, os.O_CREAT | os.O_WRONLY, 0o666))
r('child mode', lambda: oct(os.stat(c).st_mode & 0o777))
r('child acl', lambda: os.getxattr(c, A).hex())
r('child default', lambda: os.getxattr(c, D))
cd = os.path.join(sub, 'cd')
os.mkdir(cd, 0o777)
r('child dir mode', lambda: oct(os.stat(cd).st_mode & 0o777))
r('child dir default', lambda: os.getxattr(cd, D) == dflt)
os.umask(0o022)
g = os.path.join(d, 'g')
open(g, 'w').close()
os.chmod(g, 0o600)
os.setxattr(g, A, acl((1, 6, U), (2, 7, 65534), (4, 0, U), (8, 6, 12345), (0x10, 4, U), (0x20, 0, U)))
h = os.path.join(d, 'h')
open(h, 'w').close()
os.setxattr(h, A, acl((1, 6, U), (4, 0, U), (8, 6, 65534), (0x10, 4, U), (0x20, 0, U)))
pid = os.fork()
if pid == 0:
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
    res = []
    for f in (g, h):
        for fl in (os.O_RDONLY, os.O_WRONLY):
            try:
                os.close(os.open(f, fl))
                res.append('ok')
            except OSError as e:
                res.append(e.errno)
    try:
        os.setxattr(g, A, full)
        res.append('ok')
    except OSError as e:
        res.append(e.errno)
    try:
        os.setxattr(g, 'user.x', b'1')
        res.append('ok')
    except OSError as e:
        res.append(e.errno)
    print('nobody:', res, flush=True)
    os._exit(0)
os.waitpid(pid, 0)
shutil.rmtree(d)
print('\n'.join(out))
"#;

#[test]
fn xattrs_and_acls_on_tmpfs_match_native() {
    let Some(py) = ["/usr/bin/python3.11", "/usr/bin/python3"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
    else {
        runsc_rs_tests::skip("Debian's python3 is not installed");
        return;
    };
    if !nix::unistd::geteuid().is_root() {
        runsc_rs_tests::skip("needs root (setuid to nobody)");
        return;
    }
    let (native, _) = runsc_rs_tests::assert_same(&[py, "-c", SCRIPT]);
    assert!(
        native.stdout_text().contains("nobody:"),
        "the script did not run to its end natively: {}",
        native.stderr_text()
    );
}
