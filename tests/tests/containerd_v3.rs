//! End to end with a real containerd: the shim answers the Task service under both names
//! containerd uses, `containerd.task.v2.Task` (containerd 1.6 and 1.7, and 2.x for a shim
//! that prints a bare address on `start`) and `containerd.task.v3.Task` (containerd 2.x's
//! task API v3).
//!
//! containerd 1.6 starts a container with `ctr run -d`; the test then connects to that
//! container's shim itself (the socket named by the bundle's `address` file) and sends raw
//! ttrpc requests: State and Connect under each name must give the same answer, and a
//! made-up service name must be refused.
//!
//! Needs root, `containerd`, `ctr` and a static busybox; prints `SKIPPED: reason` otherwise.

mod e2e_common;

use std::time::Duration;

use containerd_shim_protos::api::{
    ConnectRequest, ConnectResponse, StateRequest, StateResponse, Status,
};
use containerd_shim_protos::protobuf::Message;
use ttrpc::{Code, Request};

use e2e_common::{skip, start_for_test, RUNTIME};

const IMAGE: &str = "docker.io/library/runsc-rs-e2e:latest";
const NAMESPACE: &str = "runsc-rs-e2e-v3";
const TASK_V2: &str = "containerd.task.v2.Task";
const TASK_V3: &str = "containerd.task.v3.Task";

/// Sends `req` as `service`/`method` and decodes the answer as `R`.
fn call<R: Message>(
    client: &ttrpc::Client,
    service: &str,
    method: &str,
    req: &impl Message,
) -> ttrpc::Result<R> {
    let request = Request {
        service: service.into(),
        method: method.into(),
        payload: req.write_to_bytes().expect("encoding the request"),
        timeout_nano: i64::try_from(Duration::from_secs(10).as_nanos()).expect("fits"),
        ..Default::default()
    };
    let response = client.request(request)?;
    Ok(R::parse_from_bytes(&response.payload).expect("decoding the response"))
}

#[test]
fn shim_answers_task_v2_and_v3() {
    let env = match start_for_test(NAMESPACE, None, &[]) {
        Ok(env) => env,
        Err(reason) => return skip(&reason),
    };
    env.build_image(IMAGE, r#"["/bin/sh"]"#);

    let id = "v3";
    env.ctr_ok(&[
        "run",
        "-d",
        "--runtime",
        RUNTIME,
        IMAGE,
        id,
        "sleep",
        "1000",
    ]);
    assert!(
        env.wait_status(id, "RUNNING", Duration::from_secs(20)),
        "task {id} never ran; containerd log:\n{}",
        env.log()
    );
    let pid = env.task_pid(id).expect("ctr task ls names the task's pid");
    let socket = env
        .shim_socket(id)
        .expect("the bundle has the shim's address file");
    let client = ttrpc::Client::connect(&format!("unix://{}", socket.display()))
        .expect("connecting to the shim's socket");

    let state = StateRequest {
        id: id.into(),
        ..Default::default()
    };
    let v2: StateResponse = call(&client, TASK_V2, "State", &state).expect("v2 State");
    let v3: StateResponse = call(&client, TASK_V3, "State", &state).expect("v3 State");
    assert_eq!(v3, v2, "v3 State differs from v2");
    assert_eq!(v3.id, id);
    assert_eq!(v3.status.enum_value(), Ok(Status::RUNNING), "{v3:?}");
    assert_eq!(v3.pid, pid, "State's pid is not the one containerd knows");

    let connect = ConnectRequest {
        id: id.into(),
        ..Default::default()
    };
    let v2: ConnectResponse = call(&client, TASK_V2, "Connect", &connect).expect("v2 Connect");
    let v3: ConnectResponse = call(&client, TASK_V3, "Connect", &connect).expect("v3 Connect");
    assert_eq!(v3, v2, "v3 Connect differs from v2");
    assert_eq!(v3.task_pid, pid);
    assert!(
        env.shim_pids(id).contains(&v3.shim_pid),
        "Connect's shim_pid {} is not the shim serving {id}",
        v3.shim_pid
    );

    // ttrpc refuses a service nobody registered with INVALID_ARGUMENT "/S/M does not exist".
    let unknown: ttrpc::Result<StateResponse> =
        call(&client, "containerd.task.v9.Task", "State", &state);
    match unknown {
        Err(ttrpc::Error::RpcStatus(status)) => {
            assert_eq!(status.code(), Code::INVALID_ARGUMENT, "{status:?}");
            assert!(status.message().contains("does not exist"), "{status:?}");
        }
        other => panic!("a made-up service name answered: {other:?}"),
    }
    drop(client);

    // The v3 calls left the shim working for containerd (v2): kill, wait, delete.
    env.ctr_ok(&["task", "kill", "-s", "KILL", id]);
    assert!(
        env.wait_status(id, "STOPPED", Duration::from_secs(20)),
        "task {id} did not stop; containerd log:\n{}",
        env.log()
    );
    assert_eq!(env.delete_task(id), 137);
    env.ctr_ok(&["container", "delete", id]);
}
