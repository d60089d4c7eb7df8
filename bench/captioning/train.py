"""The captioning stages, cached like every training stage: the backbone's pooled features of a
split's images (computed once per backbone, preprocessing and image set), then the NIC decoder
trained on them (`encoder=frozen`). Training is seeded, checkpointed atomically after every
epoch, resumable after a kill, stopped with the last good checkpoint on a non-finite loss, and
locked against a second process training the same stage.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from bench.captioning.model import NIC
from bench.captioning.vocab import PAD
from bench.errors import BenchError
from bench.finetune import lock_stage, save_atomic


@dataclass(frozen=True)
class DecoderConfig:
    embed: int
    hidden: int
    dropout: float
    epochs: int
    batch_size: int
    lr: float


class _Images(torch.utils.data.Dataset):
    def __init__(self, paths: list[Path], transform: Any):
        self.paths, self.transform = paths, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        from bench.data.images import load_rgb

        return self.transform(load_rgb(self.paths[index]))


def pooled_features(view: Any, paths: list[Path], stage_dir: Path, device: str, batch_size: int, workers: int, progress: bool) -> torch.Tensor:
    """(N, D) pooled pre-logit features of the images, in order, with the card's eval
    preprocessing; cached in stage_dir/features.pt."""
    from tqdm import tqdm

    from bench.data.images import Normalizer, eval_transform

    final = stage_dir / "features.pt"
    if final.is_file():
        return torch.load(final, map_location="cpu", weights_only=True)
    card = view.card
    loader = torch.utils.data.DataLoader(_Images(paths, eval_transform(card.preprocessing)), batch_size=max(1, batch_size), num_workers=workers)
    normalize = Normalizer(card.preprocessing, device)
    model = view.model.to(device).eval()
    parts = []
    with torch.inference_mode():
        for images in tqdm(loader, desc=f"{card.name} features", unit="batch", disable=not progress, leave=False):
            pooled, _ = view.pooled(normalize(images.to(device)))
            parts.append(pooled.float().cpu())
    features = torch.cat(parts)
    save_atomic(features, final)
    return features


def _batches(pairs: list[tuple[int, list[int]]], batch_size: int, generator: torch.Generator) -> list[list[tuple[int, list[int]]]]:
    order = torch.randperm(len(pairs), generator=generator).tolist()
    return [[pairs[i] for i in order[k:k + batch_size]] for k in range(0, len(order), batch_size)]


@dataclass
class Encoder:
    """`encoder=finetune`: the backbone trains with the decoder (its BatchNorm statistics stay
    frozen, as in detection), on the training images through the card's eval preprocessing."""

    view: Any
    paths: list[Path]
    lr: float
    workers: int = 0


def train_decoder(features: torch.Tensor | None, captions: list[list[list[int]]], vocab_size: int, cfg: DecoderConfig, stage_dir: Path, device: str,
                  seed: int, progress: bool = False, log: bool = False, encoder: Encoder | None = None) -> tuple[NIC, dict[str, Any]]:
    """The decoder trained on (image, caption) pairs, every caption of every image once per
    epoch: on cached `features` (encoder frozen), or end to end through `encoder`'s backbone,
    whose trained weights the finished stage keeps (and loads back into the view's model)."""
    from bench.data.images import Normalizer, eval_transform
    from bench.progress import StageProgress

    torch.manual_seed(seed)
    dim = features.shape[1] if features is not None else encoder.view.head().in_features
    model = NIC(dim, vocab_size, cfg.embed, cfg.hidden, cfg.dropout)
    backbone = encoder.view.model if encoder is not None else None
    final = stage_dir / "decoder.pt"
    if final.is_file():
        done = torch.load(final, map_location="cpu", weights_only=True)
        model.load_state_dict(done["model"])
        if backbone is not None:
            backbone.load_state_dict(done["backbone"])
        return model.eval(), {**json.loads((stage_dir / "decoder.json").read_text()), "cached": True, "stage_dir": str(stage_dir)}
    lock = lock_stage(stage_dir, "this captioning decoder")
    try:
        model.to(device)
        groups = [{"params": list(model.parameters()), "lr": cfg.lr}]
        if backbone is not None:
            backbone.to(device).eval()  # BatchNorm keeps the checkpoint's statistics
            head = set(id(p) for p in encoder.view.head().parameters())
            groups.append({"params": [p for p in backbone.parameters() if id(p) not in head], "lr": encoder.lr})
            normalize = Normalizer(encoder.view.card.preprocessing, device)
            images = _Images(encoder.paths, eval_transform(encoder.view.card.preprocessing))
        opt = torch.optim.Adam(groups, lr=cfg.lr)
        state_path = stage_dir / "state.pt"
        start, history = 0, []
        if state_path.is_file():  # an interrupted run of the same stage: resume after its last whole epoch
            state = torch.load(state_path, map_location="cpu", weights_only=True)
            model.load_state_dict(state["model"])
            if backbone is not None:
                backbone.load_state_dict(state["backbone"])
            opt.load_state_dict(state["optimizer"])
            start, history = int(state["epoch"]), list(state["history"])
        pairs = [(i, c) for i, caps in enumerate(captions) for c in caps]
        per_epoch = -(-len(pairs) // cfg.batch_size)
        what = "end to end" if backbone is not None else "on cached features"
        bar = StageProgress("train decoder", cfg.epochs * per_epoch, start * per_epoch, "step",
                            f"{cfg.epochs} epochs x {per_epoch} steps of batch {cfg.batch_size} on {len(pairs)} captions of {len(captions)} images, {what}", progress, log)
        started = time.perf_counter()
        for epoch in range(start, cfg.epochs):
            torch.manual_seed(seed * 100_003 + epoch)  # dropout's draws depend only on (seed, epoch): a resumed run repeats them
            model.train()
            batches = _batches(pairs, cfg.batch_size, torch.Generator().manual_seed(seed * 100_003 + epoch))
            if backbone is not None:  # the batches' images, loaded in order by the loader's workers
                pixels = iter(torch.utils.data.DataLoader(images, batch_sampler=[[i for i, _ in b] for b in batches], num_workers=encoder.workers))
            total, seen = 0.0, 0
            for batch in batches:
                length = max(len(c) for _, c in batch)
                caps = torch.full((len(batch), length), PAD, dtype=torch.long)
                for row, (_, c) in enumerate(batch):
                    caps[row, :len(c)] = torch.tensor(c)
                if backbone is not None:
                    feats, _ = encoder.view.pooled(normalize(next(pixels).to(device)))
                else:
                    feats = features[[i for i, _ in batch]].to(device)
                caps = caps.to(device)
                logits = model(feats, caps)
                loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), caps[:, 1:].reshape(-1), ignore_index=PAD)
                if not torch.isfinite(loss):
                    kept = f"the last good checkpoint (epoch {len(history)}) is kept in {stage_dir}" if state_path.is_file() else "no checkpoint was written yet"
                    raise BenchError(f"decoder training diverged at epoch {epoch + 1} (loss {float(loss.detach())}); {kept}", "lower --set lr, then run again to resume")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(batch)
                seen += len(batch)
                bar.update(epoch=epoch + 1, loss=f"{total / seen:.3f}")
            history.append(round(total / max(seen, 1), 5))
            save_atomic({"epoch": epoch + 1, "history": history, "model": model.state_dict(), "optimizer": opt.state_dict(),
                         **({"backbone": backbone.state_dict()} if backbone is not None else {})}, state_path)
        bar.close()
        info = {"config": asdict(cfg), "train_loss": history, "resumed_from_epoch": start, "seconds": round(time.perf_counter() - started, 1),
                "pairs": len(pairs), "images": len(captions), "optimizer": "adam", "encoder": "finetune" if backbone is not None else "frozen",
                **({"encoder_lr": encoder.lr, "encoder_batchnorm": "frozen statistics"} if backbone is not None else {})}
        (stage_dir / "decoder.json").write_text(json.dumps(info))
        # last: its presence marks the stage done
        save_atomic({"model": model.state_dict(), **({"backbone": backbone.state_dict()} if backbone is not None else {})}, final)
        state_path.unlink(missing_ok=True)
    finally:
        lock.close()
    return model.eval(), {**info, "cached": False, "stage_dir": str(stage_dir)}
