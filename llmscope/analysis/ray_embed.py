"""``llmscope embed --ray``: fill the embedding cache with Ray Data across a cluster's CPUs/GPUs.

For the day with millions of new distinct texts that one machine cannot embed in time. The
driver (this process) reads the texts the cache lacks exactly as ``llmscope embed`` does
(``incremental.missing_texts``), up to :data:`CHUNK` texts at a time; each chunk becomes a
``ray.data`` Dataset that a pool of actors embeds, each actor holding one copy of the
configured encoder (same model, backend and normalisation as the local path, so the vectors
equal the local ones); the driver writes the vectors into the cache as they come back, so only
the driver ever touches the store. Ray is the optional extra ``llmscope[ray]``: this module
imports it inside its functions only.
"""

from __future__ import annotations

import logging
import socket
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from llmscope.analysis.embedding import store_vectors, text_hash
from llmscope.analysis.encoders import Encoder, TorchEncoder
from llmscope.analysis.incremental import EmbedProgress, missing_texts
from llmscope.config import Settings

# Texts per Dataset: bounds the driver's memory; each Dataset starts its actors anew (seconds).
CHUNK = 100_000
# Vectors per cache write (and commit) on the driver.
WRITE_BATCH = 2048
# Texts per actor call; each actor's encoder splits them into its own forward passes.
DEFAULT_BATCH_SIZE = 256
# Seconds to wait for a cluster's port before calling it unreachable (ray.init would hang).
PROBE_TIMEOUT = 5.0
ADDRESS_FORMS = "HOST:PORT, ray://HOST:PORT, auto, local or local:N"


class RaySetupError(ValueError):
    """Ray is missing, the address is malformed or unreachable, or the encoder cannot be shipped."""


def check_encoder(encoder: Encoder) -> None:
    """Refuse the gateway encoder: it already embeds remotely, actors would only forward calls."""
    if encoder.backend == "gateway":
        raise RaySetupError(
            "--ray embeds with a local model "
            "(LLMSCOPE_EMBEDDING_BACKEND=torch|onnx|onnx-int8|onnx-int8-mixed); "
            "LLMSCOPE_EMBEDDING_MODEL=gateway:... embeds through the gateway already"
        )


def connect(address: str) -> None:
    """``ray.init`` for ``address``; a one-line :class:`RaySetupError` instead of a hang or trace.

    ``local`` / ``local:N`` start a throwaway instance on this machine (all or N CPUs), for
    trying it out; ``auto`` is the cluster ``ray start`` runs here (or ``RAY_ADDRESS``).
    """
    try:
        import ray
    except ImportError:
        raise RaySetupError("--ray needs Ray: pip install 'llmscope[ray]'") from None
    options: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": logging.WARNING,
    }
    if address == "local" or address.startswith("local:"):
        cpus = address.partition(":")[2]
        if cpus and not (cpus.isdigit() and int(cpus) > 0):
            raise RaySetupError(f"--ray local:N needs a number of CPUs above 0, not {cpus!r}")
        ray.init(num_cpus=int(cpus) if cpus else None, **options)
        return
    target = address
    if address == "auto":
        from ray._private.services import canonicalize_bootstrap_address

        try:
            target = canonicalize_bootstrap_address("auto") or ""
        except ConnectionError:
            raise RaySetupError(
                "--ray auto: no Ray cluster runs on this machine (start one with "
                "`ray start --head`, set RAY_ADDRESS, or give its HOST:PORT)"
            ) from None
    host, port = _host_port(target, address)
    try:
        socket.create_connection((host, port), timeout=PROBE_TIMEOUT).close()
    except OSError as exc:
        raise RaySetupError(
            f"--ray {address}: no Ray cluster answers at {host}:{port} ({exc.strerror or exc})"
        ) from None
    try:
        ray.init(address=address, **options)
    except Exception as exc:  # Ray raises many kinds; each is the same one-line refusal
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise RaySetupError(f"--ray {address}: cannot connect: {reason}") from None


def _host_port(target: str, address: str) -> tuple[str, int]:
    host, _, port = target.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise RaySetupError(f"--ray {address}: expected {ADDRESS_FORMS}")
    return host.strip("[]"), int(port)


def disconnect() -> None:
    """Leave the cluster (and stop it, for ``local``); nothing is left running by this driver."""
    import ray

    ray.shutdown()


class EncodeBatch:
    """One per actor: loads the encoder once, then embeds each batch of texts it is handed."""

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        encoder.encode(["warm-up"])  # load the model now, not inside the first batch

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        texts = [str(t) for t in batch["text"]]
        return {
            "hash": np.array([text_hash(t) for t in texts]),
            "vector": self.encoder.encode(texts).astype(np.float32),
        }


def embed_with_ray(
    session: Session,
    settings: Settings,
    encoder: Encoder,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    actors: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = False,
) -> EmbedProgress:
    """Embed on the connected Ray cluster the texts of records in [since, until) the cache lacks.

    ``actors`` defaults to one per GPU of the cluster (torch backend) or else one per CPU. Each
    chunk's vectors are committed as they arrive, so an interrupted run keeps what it did.
    """
    check_encoder(encoder)
    done = EmbedProgress()
    pending: dict[str, str] = {}
    for missing in missing_texts(session, settings, encoder.key, done, since=since, until=until):
        pending.update(missing)
        if len(pending) >= CHUNK:
            done.embedded += _embed_chunk(session, encoder, pending, actors, batch_size, progress)
            pending = {}
    done.embedded += _embed_chunk(session, encoder, pending, actors, batch_size, progress)
    return done


def _embed_chunk(
    session: Session,
    encoder: Encoder,
    texts: dict[str, str],
    actors: int | None,
    batch_size: int,
    progress: bool,
) -> int:
    if not texts:
        return 0
    import ray
    import ray.data

    # Ray Data's per-run log lines and bars only on a terminal, as the local path's tqdm bar.
    logging.getLogger("ray.data").setLevel(logging.INFO if progress else logging.ERROR)
    ray.data.DataContext.get_current().enable_progress_bars = progress
    resources = ray.cluster_resources()
    shipped: Encoder = encoder
    gpus = 0
    if isinstance(encoder, TorchEncoder):  # onnxruntime here runs on CPUs only
        gpus = int(resources.get("GPU", 0))
        if gpus:
            shipped = TorchEncoder(encoder.model_name, encoder.batch_size, device="cuda")
    size = actors or gpus or max(1, int(resources.get("CPU", 1)))
    # Longest first, as the local path does: a batch holds texts of similar length, little padding.
    ordered = sorted(texts.values(), key=len, reverse=True)
    dataset = ray.data.from_items([{"text": t} for t in ordered]).map_batches(
        EncodeBatch,
        fn_constructor_args=(shipped,),
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=size),
        num_cpus=1,
        num_gpus=1 if gpus else 0,
    )
    written = 0
    for batch in dataset.iter_batches(batch_size=WRITE_BATCH, batch_format="numpy"):
        hashes = [str(h) for h in batch["hash"]]
        store_vectors(session, encoder.key, hashes, np.asarray(batch["vector"], dtype=np.float32))
        session.commit()
        written += len(hashes)
    return written
