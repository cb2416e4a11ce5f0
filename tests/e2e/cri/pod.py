"""A tiny CRI client (a crictl stand-in) for the CRI end-to-end test.

    pod.py STUBS_DIR SOCKET up HANDLER IMAGE LOG_DIR FETCH_URL -> prints a JSON report
    pod.py STUBS_DIR SOCKET portforward POD_ID PORT PATH       -> GET PATH through PortForward
    pod.py STUBS_DIR SOCKET down POD_ID C1 C2 C3 C4            -> stops and removes them

`up` runs a pod sandbox with runtime handler HANDLER in a network namespace of its own (the
CRI plugin makes it and runs the CNI plugins of its configuration in it), and three containers of IMAGE in it: `c1` (in the pod's PID namespace) keeps running, `c2`
prints and exits 5, `c3` (in a PID namespace of its own, the kubelet's default) keeps
running. `c1` and `c3` print their shell's PID and `ps` to their logs. It waits for `c2` to
exit and reports ids, states, exit codes and the containers' logs. A fourth, `c4`, serves
/www/index.html with busybox httpd on port 8080 and fetches FETCH_URL (a server outside the
pod) with busybox wget, printing what it got.

`portforward` asks the CRI plugin for a PortForward URL (its streaming server) and speaks
Kubernetes' port-forward WebSocket protocol (`v4.channel.k8s.io`) to it: an HTTP/1.0 GET of
PATH goes to PORT in the pod; it prints the port headers of both channels, the reply and
whatever the error channel carried.
STUBS_DIR holds runtime_pb2*.py generated from runtime.proto with grpc_tools.protoc.
"""
import base64
import json
import os
import socket
import struct
import sys
import time
import urllib.parse

sys.path.insert(0, sys.argv[1])
import grpc  # noqa: E402
import runtime_pb2 as pb  # noqa: E402
import runtime_pb2_grpc as pbg  # noqa: E402

TIMEOUT = 60


def stub(socket):
    channel = grpc.insecure_channel("unix://" + socket)
    return pbg.RuntimeServiceStub(channel)


def pod_config(log_dir):
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name="pod", uid="pod-uid-1", namespace="default"),
        log_directory=log_dir,
        linux=pb.LinuxPodSandboxConfig(
            security_context=pb.LinuxSandboxSecurityContext(
                namespace_options=pb.NamespaceOption(network=pb.POD)
            )
        ),
    )


def container(rt, pod_id, config, name, image, script, pid_mode=None):
    linux = None
    if pid_mode is not None:
        linux = pb.LinuxContainerConfig(
            security_context=pb.LinuxContainerSecurityContext(
                namespace_options=pb.NamespaceOption(network=pb.POD, pid=pid_mode)
            )
        )
    c = pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name=name),
        image=pb.ImageSpec(image=image),
        command=["/bin/sh", "-c", script],
        log_path=name + ".log",
        linux=linux,
    )
    req = pb.CreateContainerRequest(pod_sandbox_id=pod_id, config=c, sandbox_config=config)
    cid = rt.CreateContainer(req, timeout=TIMEOUT).container_id
    rt.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=TIMEOUT)
    return cid


def status(rt, cid):
    return rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid), timeout=TIMEOUT).status


WEB_SCRIPT = (
    "/bin/busybox mkdir -p /www && echo from-the-pod > /www/index.html"
    " && /bin/busybox httpd -f -p 8080 -h /www &"
    " i=0; while [ $i -lt 300 ]; do"
    " if /bin/busybox wget -q -O /tmp/got '{url}'; then echo \"c4 fetched $(cat /tmp/got)\"; break; fi;"
    " i=$((i+1)); sleep 0.1; done; echo c4 done; sleep 100"
)


def up(rt, handler, image, log_dir, fetch_url):
    version = rt.Version(pb.VersionRequest(), timeout=TIMEOUT)
    config = pod_config(log_dir)
    pod_id = rt.RunPodSandbox(
        pb.RunPodSandboxRequest(config=config, runtime_handler=handler), timeout=TIMEOUT
    ).pod_sandbox_id
    c1 = container(rt, pod_id, config, "c1", image,
                   'echo one; echo "c1 pid $$"; ps; echo c1 done; sleep 100', pb.POD)
    c2 = container(rt, pod_id, config, "c2", image, "echo two; exit 5")
    c3 = container(rt, pod_id, config, "c3", image,
                   'echo three; echo "c3 pid $$"; ps; echo c3 done; sleep 100', pb.CONTAINER)
    c4 = container(rt, pod_id, config, "c4", image, WEB_SCRIPT.format(url=fetch_url))
    deadline = time.time() + 30
    while status(rt, c2).state != pb.CONTAINER_EXITED and time.time() < deadline:
        time.sleep(0.1)
    s1, s2, s3, s4 = status(rt, c1), status(rt, c2), status(rt, c3), status(rt, c4)
    # The log reaches the file shortly after the output is written.
    logs = {}
    complete = {"c1": "stdout F c1 done\n", "c2": "stdout F two\n", "c3": "stdout F c3 done\n",
                "c4": "stdout F c4 done\n"}
    deadline = time.time() + 40
    while time.time() < deadline:
        logs = {}
        for name in ("c1", "c2", "c3", "c4"):
            try:
                with open(log_dir + "/" + name + ".log") as f:
                    logs[name] = f.read()
            except OSError:
                logs[name] = ""
        if all(complete[n] in logs[n] for n in logs):
            break
        time.sleep(0.1)
    print(json.dumps({
        "runtime": version.runtime_name,
        "pod": pod_id,
        "c1": c1,
        "c2": c2,
        "c3": c3,
        "c4": c4,
        "c1_state": pb.ContainerState.Name(s1.state),
        "c2_state": pb.ContainerState.Name(s2.state),
        "c3_state": pb.ContainerState.Name(s3.state),
        "c4_state": pb.ContainerState.Name(s4.state),
        "c2_exit": s2.exit_code,
        "logs": logs,
    }))


def ws_frame(payload):
    """A final, masked binary WebSocket frame (RFC 6455; clients must mask)."""
    head = bytes([0x82])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 1 << 16:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError("connection closed mid-frame")
        data += chunk
    return data


def ws_read(sock):
    """One server frame: (opcode, payload). Servers do not mask; tolerate it anyway."""
    b0, b1 = recv_exact(sock, 2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", recv_exact(sock, 2))[0]
    elif n == 127:
        n = struct.unpack("!Q", recv_exact(sock, 8))[0]
    mask = recv_exact(sock, 4) if b1 & 0x80 else None
    payload = recv_exact(sock, n)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return b0 & 0x0F, payload


def portforward(rt, pod_id, port, path):
    port = int(port)
    url = rt.PortForward(pb.PortForwardRequest(pod_sandbox_id=pod_id, port=[port]),
                         timeout=TIMEOUT).url
    u = urllib.parse.urlsplit(url)
    sock = socket.create_connection((u.hostname, u.port), timeout=30)
    key = base64.b64encode(os.urandom(16)).decode()
    target = u.path + "?" + (u.query + "&" if u.query else "") + "port=%d" % port
    sock.sendall((
        "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n" % (target, u.netloc, key)
    ).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        if not chunk:
            break
        head += chunk
    status_line = head.split(b"\r\n", 1)[0].decode(errors="replace")
    report = {"url": url, "upgrade": status_line, "headers": {}, "reply": "", "error": ""}
    if " 101 " not in status_line + " ":
        report["upgrade_reply"] = head.decode(errors="replace")
        print(json.dumps(report))
        return
    # Each channel's first frame is its port, little-endian; then data (0) and errors (1).
    request = "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n" % path
    sock.sendall(ws_frame(bytes([0]) + request.encode()))
    reply, error, seen = b"", b"", set()
    while True:
        try:
            opcode, payload = ws_read(sock)
        except (EOFError, socket.timeout, ConnectionError) as e:
            report["end"] = repr(e)
            break
        if opcode == 8:
            report["end"] = "close frame"
            break
        if opcode not in (1, 2) or not payload:
            continue
        channel, data = payload[0], payload[1:]
        if channel not in seen:
            seen.add(channel)
            report["headers"][str(channel)] = struct.unpack("<H", data[:2])[0] if len(data) >= 2 else -1
            data = data[2:]
        if channel == 0:
            reply += data
        elif channel == 1:
            error += data
    sock.close()
    report["reply"] = reply.decode(errors="replace")
    report["error"] = error.decode(errors="replace")
    print(json.dumps(report))


def down(rt, pod_id, c1, c2, c3, c4):
    rt.StopContainer(pb.StopContainerRequest(container_id=c1, timeout=2), timeout=TIMEOUT)
    c1_exit = status(rt, c1).exit_code
    rt.StopContainer(pb.StopContainerRequest(container_id=c3, timeout=2), timeout=TIMEOUT)
    rt.StopContainer(pb.StopContainerRequest(container_id=c4, timeout=2), timeout=TIMEOUT)
    for cid in (c1, c2, c3, c4):
        rt.RemoveContainer(pb.RemoveContainerRequest(container_id=cid), timeout=TIMEOUT)
    rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=TIMEOUT)
    rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=TIMEOUT)
    print(json.dumps({"c1_exit": c1_exit}))


def main():
    rt = stub(sys.argv[2])
    if sys.argv[3] == "up":
        up(rt, *sys.argv[4:8])
    elif sys.argv[3] == "portforward":
        portforward(rt, *sys.argv[4:7])
    else:
        down(rt, *sys.argv[4:9])


if __name__ == "__main__":
    main()
