"""The captioning stages, cached like every training stage: the backbone's pooled features of a
split's images (computed once per backbone, preprocessing and image set), then the NIC decoder
trained on them. Training is seeded, checkpointed atomically after every epoch, resumable after a
kill, stopped with the last good checkpoint on a non-finite loss, and locked against a second
process training the same stage.

Cached features are the fast path (`encoder=frozen`, `encoder_bn=eval`, `transform=eval`). The
paper's NIC code instead runs the backbone in every step: its BatchNorm in training mode (weights
frozen, statistics from each batch, the drifted running statistics kept for test) and a fresh
random crop and flip per step; `Encoder` runs that path, and `encoder=finetune` as well.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from bench.captioning.model import NIC, NICOptions
from bench.captioning.vocab import PAD
from bench.errors import BenchError
from bench.finetune import lock_stage, save_atomic

TRANSFORMS = ("eval", "squash_crop_flip")


@dataclass(frozen=True)
class DecoderConfig:
    embed: int
    hidden: int
    dropout: float
    epochs: int
    batch_size: int
    lr: float
    loss_norm: str = "tokens"  # "tokens": mean over the non-pad target tokens; "positions": over B x T_max, as the paper's code
    nic: NICOptions = field(default_factory=NICOptions)


class _Images(torch.utils.data.Dataset):
    """uint8 images by key (index, draw): the card's eval transform ("eval", draw unused) or the
    paper's NIC code's squash, random crop and flip seeded by the draw."""

    def __init__(self, paths: list[Path], prep: Any, transform: str = "eval"):
        from bench.data.images import eval_transform

        self.paths, self.prep, self.transform = paths, prep, transform
        self.eval = eval_transform(prep)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: Any) -> torch.Tensor:
        from bench.data.images import load_rgb, squash_crop_flip

        index, draw = key if isinstance(key, tuple) else (key, 0)
        image = load_rgb(self.paths[index])
        return self.eval(image) if self.transform == "eval" else squash_crop_flip(image, self.prep, draw)


def draws(n: int, seed: int) -> list[int]:
    """One seed per image for a random transform, from the run's seed."""
    return torch.randint(0, 2**62, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def pooled_features(view: Any, paths: list[Path], stage_dir: Path, device: str, batch_size: int, workers: int, progress: bool,
                    transform: str = "eval", seed: int = 0) -> torch.Tensor:
    """(N, D) pooled pre-logit features of the images, in order, in eval mode, through `transform`
    (a random one draws once per image from `seed`); cached in stage_dir/features.pt."""
    from tqdm import tqdm

    from bench.data.images import Normalizer

    final = stage_dir / "features.pt"
    if final.is_file():
        return torch.load(final, map_location="cpu", weights_only=True)
    card = view.card
    keys = list(zip(range(len(paths)), draws(len(paths), seed)))
    batches = [keys[k:k + max(1, batch_size)] for k in range(0, len(keys), max(1, batch_size))]
    loader = torch.utils.data.DataLoader(_Images(paths, card.preprocessing, transform), batch_sampler=batches, num_workers=workers)
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


def _batches(pairs: list[tuple[int, list[int]]], batch_size: int, generator: torch.Generator, merge_single: bool = False) -> list[list[tuple[int, list[int]]]]:
    order = torch.randperm(len(pairs), generator=generator).tolist()
    out = [[pairs[i] for i in order[k:k + batch_size]] for k in range(0, len(order), batch_size)]
    if merge_single and len(out) > 1 and len(out[-1]) == 1:  # BatchNorm in training mode cannot take a batch of one
        out[-2].extend(out.pop())
    return out


@dataclass
class Encoder:
    """The backbone inside the training loop: every step runs the batch's images through it.
    `lr` None keeps its weights frozen; a number trains it with Adam (`encoder=finetune`).
    `bn` "eval" keeps the checkpoint's BatchNorm statistics; "train" (the paper's NIC code) puts
    the BatchNorm layers in training mode, so that features use each batch's statistics and the
    running ones drift to the training images (the stage keeps them, and the scored features use
    them). `transform` "squash_crop_flip" draws a fresh crop and flip per step."""

    view: Any
    paths: list[Path]
    lr: float | None
    workers: int = 0
    bn: str = "eval"
    transform: str = "eval"

    @property
    def changes_backbone(self) -> bool:
        return self.lr is not None or self.bn == "train"


def _batchnorm_train(model: torch.nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.train()


def train_decoder(features: torch.Tensor | None, captions: list[list[list[int]]], vocab_size: int, cfg: DecoderConfig, stage_dir: Path, device: str,
                  seed: int, progress: bool = False, log: bool = False, encoder: Encoder | None = None) -> tuple[NIC, dict[str, Any]]:
    """The decoder trained on (image, caption) pairs, every caption of every image once per
    epoch: on cached `features`, or with `encoder`'s backbone in the loop, whose weights or
    BatchNorm statistics, when they change, the finished stage keeps (and loads back into the
    view's model)."""
    from bench.data.images import Normalizer
    from bench.progress import StageProgress

    torch.manual_seed(seed)
    dim = features.shape[1] if features is not None else encoder.view.head().in_features
    model = NIC(dim, vocab_size, cfg.embed, cfg.hidden, cfg.dropout, cfg.nic)
    backbone = encoder.view.model if encoder is not None else None
    keeps_backbone = encoder is not None and encoder.changes_backbone
    final = stage_dir / "decoder.pt"
    if final.is_file():
        done = torch.load(final, map_location="cpu", weights_only=True)
        model.load_state_dict(done["model"])
        if keeps_backbone:
            backbone.load_state_dict(done["backbone"])
        return model.eval(), {**json.loads((stage_dir / "decoder.json").read_text()), "cached": True, "stage_dir": str(stage_dir)}
    lock = lock_stage(stage_dir, "this captioning decoder")
    try:
        model.to(device)
        groups = [{"params": list(model.parameters()), "lr": cfg.lr}]
        if backbone is not None:
            backbone.to(device).eval()  # BatchNorm keeps the checkpoint's statistics unless encoder.bn == "train"
            if encoder.lr is not None:
                head = set(id(p) for p in encoder.view.head().parameters())
                groups.append({"params": [p for p in backbone.parameters() if id(p) not in head], "lr": encoder.lr})
            normalize = Normalizer(encoder.view.card.preprocessing, device)
            images = _Images(encoder.paths, encoder.view.card.preprocessing, encoder.transform)
        opt = torch.optim.Adam(groups, lr=cfg.lr)
        state_path = stage_dir / "state.pt"
        start, history = 0, []
        if state_path.is_file():  # an interrupted run of the same stage: resume after its last whole epoch
            state = torch.load(state_path, map_location="cpu", weights_only=True)
            model.load_state_dict(state["model"])
            if keeps_backbone:
                backbone.load_state_dict(state["backbone"])
            opt.load_state_dict(state["optimizer"])
            start, history = int(state["epoch"]), list(state["history"])
        pairs = [(i, c) for i, caps in enumerate(captions) for c in caps]
        merge = cfg.nic.image_embed == "linear_bn" or (encoder is not None and encoder.bn == "train")
        per_epoch = len(_batches(pairs, cfg.batch_size, torch.Generator().manual_seed(0), merge))
        what = "on cached features" if backbone is None else ("end to end" if encoder.lr is not None else "with the frozen backbone in every step")
        bar = StageProgress("train decoder", cfg.epochs * per_epoch, start * per_epoch, "step",
                            f"{cfg.epochs} epochs x {per_epoch} steps of batch {cfg.batch_size} on {len(pairs)} captions of {len(captions)} images, {what}", progress, log)
        started = time.perf_counter()
        for epoch in range(start, cfg.epochs):
            torch.manual_seed(seed * 100_003 + epoch)  # dropout's draws depend only on (seed, epoch): a resumed run repeats them
            model.train()
            generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
            batches = _batches(pairs, cfg.batch_size, generator, merge)
            if backbone is not None:  # the batches' images (a fresh draw each for a random transform), loaded in order by the loader's workers
                if encoder.bn == "train":
                    _batchnorm_train(backbone)
                keys = [[(i, d) for (i, _), d in zip(b, torch.randint(0, 2**62, (len(b),), generator=generator).tolist())] for b in batches]
                pixels = iter(torch.utils.data.DataLoader(images, batch_sampler=keys, num_workers=encoder.workers))
            total, seen = 0.0, 0
            for batch in batches:
                length = max(len(c) for _, c in batch)
                caps = torch.full((len(batch), length), PAD, dtype=torch.long)
                for row, (_, c) in enumerate(batch):
                    caps[row, :len(c)] = torch.tensor(c)
                if backbone is not None:
                    with torch.set_grad_enabled(encoder.lr is not None):  # frozen weights: no graph through the backbone
                        feats, _ = encoder.view.pooled(normalize(next(pixels).to(device)))
                else:
                    feats = features[[i for i, _ in batch]].to(device)
                caps = caps.to(device)
                logits = model(feats, caps)
                loss = caption_loss(logits, caps[:, 1:], cfg.loss_norm)
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
                         **({"backbone": backbone.state_dict()} if keeps_backbone else {})}, state_path)
        bar.close()
        if backbone is not None:
            backbone.eval()
        info = {"config": asdict(cfg), "train_loss": history, "resumed_from_epoch": start, "seconds": round(time.perf_counter() - started, 1),
                "pairs": len(pairs), "images": len(captions), "optimizer": "adam",
                "encoder": "finetune" if encoder is not None and encoder.lr is not None else "frozen",
                "encoder_batchnorm": "training mode (batch statistics; running statistics updated and kept)" if encoder is not None and encoder.bn == "train" else "frozen statistics",
                "transform": encoder.transform if encoder is not None else "eval (cached features)",
                **({"encoder_lr": encoder.lr} if encoder is not None and encoder.lr is not None else {})}
        (stage_dir / "decoder.json").write_text(json.dumps(info))
        # last: its presence marks the stage done
        save_atomic({"model": model.state_dict(), **({"backbone": backbone.state_dict()} if keeps_backbone else {})}, final)
        state_path.unlink(missing_ok=True)
    finally:
        lock.close()
    return model.eval(), {**info, "cached": False, "stage_dir": str(stage_dir)}


def caption_loss(logits: torch.Tensor, targets: torch.Tensor, norm: str = "tokens") -> torch.Tensor:
    """Per-word cross-entropy of (B, T, V) logits against (B, T) targets (PAD where there is no
    word). "tokens": the mean over the non-pad targets; "positions" (the paper's NIC code): the
    sum over them divided by B x T, every padded position counted in the denominator."""
    flat = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=PAD, reduction="sum")
    count = targets.numel() if norm == "positions" else int((targets != PAD).sum())
    return flat / max(count, 1)
