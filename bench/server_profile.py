"""Server profile: py-spy's raw stacks of the event-loop thread, summarised into where its busy
time goes (categories, ForestGate functions inclusive, top frames by self time).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

IDLE_LEAVES = ("epoll_wait", "epoll_pwait", "poll ", "select", "pthread_cond", "futex", "sem_wait")
SYSCALL_LEAVES = ("sendmsg", "recvmsg", "recv ", "read ", "write ", "getpid", "syscall", "eventfd")
CATEGORIES = (  # the innermost frame that matches one of these names the sample's category
    ("engine (compiled model .so)", ("predict_unit", "forestgate_predict", "xgb_med-")),
    ("metrics (prometheus_client)", ("prometheus_client",)),
    ("protobuf", ("protobuf", "upb", "_message.")),
    ("numpy", ("numpy",)),
    ("ForestGate Python (server/, engine/)", ("(server/", "(engine/", "(forestgate/")),
    ("gRPC (aio Python, Cython, C core)", ("grpc",)),
    ("event loop (uvloop, asyncio)", ("uvloop", "asyncio", "loop.c", "uv_", "task_", "Task")),
)
FG_FUNCTIONS = (  # substrings of py-spy frame names; a sample counts once per entry
    "wrapper (server/status.py)",
    "ModelInfer (server/oip.py)",
    "decode_infer_request (server/codec.py)",
    "deadline_ns (server/oip.py)",
    "ScoringCore.infer (server/scoring.py)",
    "MicroBatcher.submit (server/batcher.py)",
    "MicroBatcher._step (server/batcher.py)",
    "MicroBatcher._form (server/batcher.py)",
    "MicroBatcher._compute (server/batcher.py)",
    "MicroBatcher._deliver (server/batcher.py)",
    "CompiledModel.score (engine/model.py)",
    "ModelStats.on_batch (server/metrics.py)",
    "encode_infer_response (server/codec.py)",
    "prometheus_client",
)


def _frame(f: str) -> str:
    return re.sub(r":\d+\)$", ")", f)


def _category(frames: list[str]) -> str:
    for f in reversed(frames):
        for name, needles in CATEGORIES:
            if any(needle in f for needle in needles):
                return name
    return "other"


def summarize_profile(stacks: str) -> dict[str, Any]:
    """py-spy raw stacks -> where the event-loop thread's busy time goes."""
    total = main = idle = 0
    categories: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for line in stacks.splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_frame(f) for f in stack.split(";")]
        if not any(f.startswith("<module>") for f in frames):
            continue
        main += n
        leaf = frames[-1]
        if leaf.startswith(IDLE_LEAVES) or leaf.startswith("poll ("):
            idle += n
            continue
        leaves[leaf] += n
        for pattern in FG_FUNCTIONS:
            if any(pattern in f for f in frames):
                inclusive[pattern] += n
        if leaf.startswith(SYSCALL_LEAVES):
            # Attribute a system call to whoever made it, looking past asyncio's C helpers.
            callers = [
                f for f in frames if "_asynciomodule" not in f and "get_running_loop" not in f
            ]
            category = _category(callers)
            call = leaf.split(" ")[0]
            if any(f.startswith("eventfd_write") for f in frames):
                call = "eventfd write, waking gRPC's threads"
            elif call == "getpid" and any("get_running_loop" in f for f in frames):
                call = "getpid from asyncio get_running_loop"
            category = f"system call {call} (from {category.split(' (')[0]})"
        else:
            category = _category(frames)
        categories[category] += n
    busy = max(main - idle, 1)
    return {
        "samples": total,
        "main_samples": main,
        "main_idle_share": idle / main if main else 0.0,
        "categories": [(k, v / busy) for k, v in categories.most_common()],
        "top_self": [(k, v / busy) for k, v in leaves.most_common(20)],
        "forestgate_inclusive": [(f, inclusive[f] / busy) for f in FG_FUNCTIONS],
    }
