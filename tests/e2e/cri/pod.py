"""A tiny CRI client (a crictl stand-in) for the CRI end-to-end test.

    pod.py STUBS_DIR SOCKET up HANDLER IMAGE LOG_DIR   -> prints a JSON report
    pod.py STUBS_DIR SOCKET down POD_ID C1 C2 C3       -> stops and removes them

`up` runs a pod sandbox with runtime handler HANDLER in a network namespace of its own (the
CRI plugin makes it and runs the CNI plugins of its configuration in it), and three containers of IMAGE in it: `c1` (in the pod's PID namespace) keeps running, `c2`
prints and exits 5, `c3` (in a PID namespace of its own, the kubelet's default) keeps
running. `c1` and `c3` print their shell's PID and `ps` to their logs. It waits for `c2` to
exit and reports ids, states, exit codes and the containers' logs.
STUBS_DIR holds runtime_pb2*.py generated from runtime.proto with grpc_tools.protoc.
"""
import json
import sys
import time

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


def up(rt, handler, image, log_dir):
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
    deadline = time.time() + 30
    while status(rt, c2).state != pb.CONTAINER_EXITED and time.time() < deadline:
        time.sleep(0.1)
    s1, s2, s3 = status(rt, c1), status(rt, c2), status(rt, c3)
    # The log reaches the file shortly after the output is written.
    logs = {}
    complete = {"c1": "stdout F c1 done\n", "c2": "stdout F two\n", "c3": "stdout F c3 done\n"}
    deadline = time.time() + 10
    while time.time() < deadline:
        logs = {}
        for name in ("c1", "c2", "c3"):
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
        "c1_state": pb.ContainerState.Name(s1.state),
        "c2_state": pb.ContainerState.Name(s2.state),
        "c3_state": pb.ContainerState.Name(s3.state),
        "c2_exit": s2.exit_code,
        "logs": logs,
    }))


def down(rt, pod_id, c1, c2, c3):
    rt.StopContainer(pb.StopContainerRequest(container_id=c1, timeout=2), timeout=TIMEOUT)
    c1_exit = status(rt, c1).exit_code
    rt.StopContainer(pb.StopContainerRequest(container_id=c3, timeout=2), timeout=TIMEOUT)
    for cid in (c1, c2, c3):
        rt.RemoveContainer(pb.RemoveContainerRequest(container_id=cid), timeout=TIMEOUT)
    rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=TIMEOUT)
    rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=TIMEOUT)
    print(json.dumps({"c1_exit": c1_exit}))


def main():
    rt = stub(sys.argv[2])
    if sys.argv[3] == "up":
        up(rt, *sys.argv[4:7])
    else:
        down(rt, *sys.argv[4:8])


if __name__ == "__main__":
    main()
