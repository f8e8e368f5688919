"""The process a rank's ``fn`` runs in, started by path (``python _child.py spec result ppid``).

Run as a script so that it imports only what ``fn`` and its arguments need: the rank starts sooner,
and TensorFlow's and PyTorch's process-wide state is new on every attempt.
"""

import ctypes
import logging
import os
import pickle
import signal
import sys
import traceback

_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid: int) -> None:
    # The kernel kills this process when its parent (the Spark task or the driver) dies.
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:
        os._exit(70)


def _call(call, start: dict, wants_ctx: bool):
    fn, args, kwargs = call
    context = start["context"]
    if start["shard_path"] is not None:
        from deepframes.distributed.shard import bind_shards

        bind_shards(
            args, kwargs, start["shard_path"], start["shard_rows"], context.rank
        )
    if wants_ctx:
        return fn(context, *args, **kwargs)
    return fn(*args, **kwargs)


def _wait_for_start() -> dict:
    try:
        return pickle.load(sys.stdin.buffer)
    except EOFError:
        # The parent gave up before the rendezvous (another rank failed): nothing to run.
        os._exit(0)


def _encode_value(value, spec: dict) -> dict:
    if not spec["return_value"]:
        return {"ok": True, "value": None}
    try:
        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as error:  # noqa: BLE001 - pickle raises many types for one cause
        return _failure(
            TypeError(
                f"fn's return value on rank {spec['rank']} cannot be pickled "
                f"({type(value).__name__}: {error}). Return plain values (numbers, NumPy arrays, "
                "a state_dict moved to CPU) or save the model under ctx.checkpoint_dir and return its path."
            )
        )
    limit = spec["max_result_bytes"]
    if len(data) > limit:
        return _failure(
            ValueError(
                f"fn's return value on rank {spec['rank']} is {len(data):,} bytes pickled; the "
                f"limit is {limit:,}. Save large results under ctx.checkpoint_dir and return the path."
            )
        )
    return {"ok": True, "value": data}


def _failure(error: BaseException) -> dict:
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    return {
        "ok": False,
        "type": type(error).__name__,
        "message": str(error),
        "traceback": text,
    }


def main(spec_path: str, result_path: str, parent_pid: int) -> None:
    _die_with_parent(parent_pid)
    if not logging.root.handlers:
        logging.basicConfig(
            level=logging.INFO,
            stream=sys.stderr,
            format="%(levelname)s %(name)s: %(message)s",
        )
    with open(spec_path, "rb") as source:
        spec = pickle.load(source)
    try:
        # Loading fn imports its modules while the parent is still at the rendezvous.
        call = pickle.loads(spec["payload"])
        start = _wait_for_start()
        os.environ.update(start["environment"])
        outcome = _encode_value(_call(call, start, spec["wants_ctx"]), spec)
    except BaseException as error:  # noqa: BLE001 - every failure goes back to the driver
        outcome = _failure(error)
    with open(result_path + ".tmp", "wb") as sink:
        pickle.dump(outcome, sink)
    os.replace(result_path + ".tmp", result_path)
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: collective libraries (gloo, TF's collective ops) can hang in it.
    os._exit(0)


if __name__ == "__main__":
    sys.path.remove(os.path.dirname(os.path.abspath(__file__)))
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
