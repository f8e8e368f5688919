"""Which GPUs a rank sees: the addresses Spark gave its task, mapped through a pre-set
``CUDA_VISIBLE_DEVICES``."""

from __future__ import annotations


def visible_devices(addresses: list[str], preset: str | None) -> tuple[str, ...]:
    """The ``CUDA_VISIBLE_DEVICES`` entries for Spark GPU ``addresses``.

    Spark's addresses index the devices this machine shows; when ``CUDA_VISIBLE_DEVICES`` is
    already set (a container or scheduler restricted it), address ``i`` means its ``i``-th entry.

    Examples
    --------
    >>> visible_devices(["0", "1"], None)
    ('0', '1')
    >>> visible_devices(["1"], "4,5,6")
    ('5',)
    """
    if not preset:
        return tuple(addresses)
    entries = [entry.strip() for entry in preset.split(",") if entry.strip()]
    chosen = []
    for address in addresses:
        if not address.isdigit() or int(address) >= len(entries):
            raise ValueError(
                f"Spark assigned GPU address {address!r}, but CUDA_VISIBLE_DEVICES={preset!r} lists "
                f"{len(entries)} devices: expected integer addresses below {len(entries)}. Make the "
                "GPU discovery script report indices into CUDA_VISIBLE_DEVICES, or unset it."
            )
        chosen.append(entries[int(address)])
    return tuple(chosen)


def rank_gpus(
    task_addresses: list[str], gpus_per_slot: int, preset: str | None
) -> tuple[str, ...]:
    """The GPUs of one rank: the first ``gpus_per_slot`` of its task's addresses.

    A fractional ``spark.task.resource.gpu.amount`` gives several tasks one shared address; each of
    those ranks then sees that one GPU.

    Examples
    --------
    >>> rank_gpus(["2", "3"], 1, None)
    ('2',)
    """
    if len(task_addresses) < gpus_per_slot:
        raise ValueError(
            f"gpus_per_slot={gpus_per_slot}, but Spark gave this task {len(task_addresses)} GPU(s) "
            f"({task_addresses}). Set spark.task.resource.gpu.amount={gpus_per_slot} or lower gpus_per_slot."
        )
    return visible_devices(
        sorted(task_addresses, key=_address_key)[:gpus_per_slot], preset
    )


def _address_key(address: str) -> tuple[int, str]:
    return (int(address), "") if address.isdigit() else (1 << 30, address)
