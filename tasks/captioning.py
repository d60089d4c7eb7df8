"""Captioning transfer on MS-COCO (the paper's NIC column): a Show-and-Tell decoder trained on the
backbone's pooled features of train2014, captions of val2014 by beam search, scored with
coco-caption's BLEU-1..4, METEOR, ROUGE-L and CIDEr (bench.metrics.captions).

Data: <root>/coco/{train2014,val2014}/ and <root>/coco/annotations/captions_{train,val}2014.json.
`encoder=frozen`: the backbone is not trained; its features are computed once and cached.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from bench.errors import BenchError
from bench.evaluation import RowsEvaluator
from bench.settings import Setting
from bench.task import DataCheck, DataLocator, MetricSpec, Stat, Plan, RunContext, Task
from bench.captioning.train import TRANSFORMS
from bench.captioning.vocab import TOKENIZERS

CAPTION_METRICS = (
    ("bleu_1", "BLEU-1", "NIC BLEU-1"), ("bleu_2", "BLEU-2", None), ("bleu_3", "BLEU-3", None), ("bleu_4", "BLEU-4", "NIC BLEU-4"),
    ("meteor", "METEOR 1.5", None), ("rouge_l", "ROUGE-L", None), ("cider", "CIDEr", None),
)


def _split_files(root: Path, split: str) -> tuple[Path, Path]:
    return root / split, root / "annotations" / f"captions_{split}.json"


def read_split(root: Path, split: str) -> Any:
    """A split's captions with every image file present (one line naming the first missing one)."""
    from bench.data.coco import read_captions

    folder, annotations = _split_files(root, split)
    if not annotations.is_file():
        raise BenchError(f"COCO captions {annotations} do not exist", f"expected <coco>/annotations/captions_{split}.json (from annotations_trainval2014.zip)")
    refs = read_captions(annotations)
    missing = [name for name in refs.files.values() if not (folder / name).is_file()]
    if missing:
        raise BenchError(f"{len(missing)} image(s) listed in {annotations} are missing from {folder} (e.g. {missing[0]})", f"restore {split}.zip's images")
    return refs


@dataclass
class CaptionSplits:
    """What one `split` setting trains on and scores: training images with their captions, and
    the scored images (COCO ids) with their references."""

    name: str
    train_paths: list[Path]
    train_captions: list[list[str]]
    eval_ids: list[int]
    eval_paths: list[Path]
    references: dict[int, list[str]]


def read_karpathy(root: Path, refs: dict[str, Any]) -> dict[str, list[tuple[str, int]]]:
    """Karpathy's splits (<coco>/dataset_coco.json): split name -> [(folder, COCO id)]; every image
    must be one the annotations list, under the same file name."""
    import json

    path = root / "dataset_coco.json"
    if not path.is_file():
        raise BenchError(f"split=karpathy needs {path}", "place dataset_coco.json from Karpathy's caption_datasets.zip there, or --set split=val2014")
    try:
        images = json.loads(path.read_text())["images"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise BenchError(f"{path} is not Karpathy's split file ({exc})", "use dataset_coco.json from caption_datasets.zip") from None
    out: dict[str, list[tuple[str, int]]] = {"train": [], "restval": [], "val": [], "test": []}
    for n, image in enumerate(images):
        try:
            folder, name, cocoid, split = image["filepath"], image["filename"], int(image["cocoid"]), image["split"]
        except (KeyError, TypeError, ValueError):
            raise BenchError(f"{path}: images[{n}] lacks filepath, filename, cocoid or split", "use dataset_coco.json from caption_datasets.zip") from None
        if folder not in refs or split not in out:
            raise BenchError(f"{path}: images[{n}] is in '{folder}' / split '{split}', which COCO 2014 does not have", "use the COCO 2014 version of dataset_coco.json")
        if refs[folder].files.get(cocoid) != name:
            raise BenchError(f"{path}: images[{n}] ({name}, id {cocoid}) disagrees with captions_{folder}.json "
                             f"({'no such image id' if cocoid not in refs[folder].files else 'it names ' + refs[folder].files[cocoid]})",
                             "use the split file and the annotations of the same COCO release")
        out[split].append((folder, cocoid))
    return out


def caption_splits(root: Path, split: str) -> CaptionSplits:
    """val2014: train on train2014, score all of val2014. karpathy: train on train + restval,
    score the 5,000 test images (references from the annotations)."""
    refs = {"train2014": read_split(root, "train2014"), "val2014": read_split(root, "val2014")}
    if split == "val2014":
        train = [("train2014", i) for i in sorted(refs["train2014"].files)]
        scored = [("val2014", i) for i in sorted(refs["val2014"].files)]
    else:
        parts = read_karpathy(root, refs)
        train, scored = parts["train"] + parts["restval"], parts["test"]
        if not train or not scored:
            raise BenchError(f"{root / 'dataset_coco.json'} has {len(train)} train + restval and {len(scored)} test images", "use dataset_coco.json from caption_datasets.zip")
    return CaptionSplits(
        split,
        [root / f / refs[f].files[i] for f, i in train], [refs[f].captions[i] for f, i in train],
        [i for _, i in scored], [root / f / refs[f].files[i] for f, i in scored], {i: refs[f].captions[i] for f, i in scored},
    )


# corpus BLEU from summed per-image counts (a Koehn-style paired bootstrap); ROUGE-L and CIDEr are means of
# per-image scores; METEOR's corpus score is not a mean of its segments' scores: no statistic declared
CAPTION_STATS = {**{f"bleu_{n}": Stat(f"bleu_{n}", "bleu_stats") for n in (1, 2, 3, 4)},
                 "rouge_l": Stat("mean", "rouge_l_image"), "cider": Stat("mean", "cider_image")}


class CaptionEvaluator(RowsEvaluator):
    """Batches (features, image ids); outputs the decoder's word ids per image; rows: image id ->
    caption. Scored once every rank's captions are in, against the split's references."""

    def __init__(self, references: dict[int, list[str]], vocab: Any, meteor: bool = True):
        self.references, self.vocab, self.meteor = references, vocab, meteor

    def process(self, batch: Any, outputs: list[list[int]]) -> None:
        for image_id, words in zip(batch[1].tolist(), outputs):
            self.rows[int(image_id)] = self.vocab.decode(words)

    def metrics(self) -> dict[str, float]:
        from bench.metrics.captions import caption_metrics

        scores, self.info = caption_metrics(self.references, self.rows, meteor=self.meteor)
        return {k: v for k, v in scores.items() if v is not None}  # METEOR without Java: absent, and said in the details

    def details(self) -> dict[str, Any]:
        return {"tokenizer": self.info["tokenizer"], "meteor": self.info["meteor_status"], "images_captioned": self.info["images"]}

    def samples(self) -> list[dict[str, Any]]:
        per = self.info["per_image"]
        stats = self.info["statistics"]
        return [{"image_id": i, "caption": c, "bleu_4": round(per[i]["bleu_4"], 4), "cider": round(per[i]["cider"], 4), **stats[i]} for i, c in sorted(self.rows.items())]


class _Features(torch.utils.data.Dataset):
    def __init__(self, features: torch.Tensor, ids: list[int]):
        self.features, self.ids = features, ids

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.features[index], self.ids[index]


# The paper's NIC code (stevehuanghe/image_captioning, App. D's footnote 4) choice by choice; the
# defaults follow it except where it has a defect (README: "coco_cap: the paper's NIC code").
PRESETS = {"paper_code": {"encoder_bn": "train", "transform": "squash_crop_flip", "beam_end": "ignore", "loss_norm": "positions",
                          "image_embed": "linear_bn", "init": "paper_code", "dropout_at": "output", "tokenizer": "nltk", "min_count": 4,
                          "cut_train_captions": False, "max_length": 20, "beam": 20, "batch_size": 20, "lr": 0.001, "epochs": 100,
                          "embed": 100, "hidden": 300, "dropout": 0.1}}


class CocoCaptioning(Task):
    name = "coco_cap"
    # 1: NIC on frozen pooled features, val2014 scored
    # 2: at most max_length words decoded (was max_length + 1); the paper code's model choices as defaults
    #    (image embedding + BatchNorm1d, its initialisation, dropout on the LSTM output only, nltk tokens,
    #    min_count 4, training captions not cut) and its other choices as settings (preset=paper_code)
    version = "2"
    description = "MS-COCO captioning with NIC on the backbone's pooled feature: BLEU-1..4, METEOR, ROUGE-L, CIDEr (coco-caption)"
    datasets = ("coco",)
    replaces_head = True  # the classifier is not used: the decoder reads the pooled feature
    reported_key = "coco_cap"
    metrics = tuple(
        MetricSpec(key, True, description=f"coco-caption {label} (PTB tokens, corpus level), percent", tables=((f"paper Table 10: {table}",) if table else ()) + (f"paper Table A1: {label}",) + (("transfer: Image Captioning (BLEU-4)",) if key == "bleu_4" else ()),
                   headline=key in ("bleu_4", "cider"), stat=CAPTION_STATS.get(key))
        for key, label, table in CAPTION_METRICS
    )
    sample_key = ("image_id",)

    def default_config(self) -> dict[str, Any]:
        return {"split": "val2014", "encoder": "frozen", "embed": 100, "hidden": 300, "dropout": 0.1, "min_count": 4, "max_length": 20,
                "beam": 20, "batch_size": 20, "lr": 0.001, "epochs": 100, "meteor": True, "encoder_lr": 1e-4,
                "encoder_bn": "eval", "transform": "eval", "image_embed": "linear_bn", "init": "paper_code", "dropout_at": "output",
                "tokenizer": "nltk", "cut_train_captions": False, "beam_end": "stop", "loss_norm": "tokens", "preset": "default"}

    def settings(self) -> dict[str, Setting]:
        return {
            "split": Setting("str", "val2014: train on train2014, score all of val2014 (the paper code's default); karpathy: train + restval, score the 5k test (dataset_coco.json)",
                             choices=("val2014", "karpathy")),
            "encoder": Setting("str", "frozen: the backbone's weights are not trained; "
                               "finetune: the backbone trains with the decoder (Adam at encoder_lr; BatchNorm statistics frozen unless encoder_bn=train)", choices=("frozen", "finetune")),
            "encoder_lr": Setting("float", "Adam learning rate of the backbone with encoder=finetune", lo=0, lo_open=True),
            "encoder_bn": Setting("str", "eval: the backbone's BatchNorm keeps the checkpoint's statistics (features cached); train (the paper's code): BatchNorm in "
                                  "training mode while the decoder trains, each step's 20-image batch statistics, the drifted running statistics kept for the scored images",
                                  choices=("eval", "train")),
            "transform": Setting("str", "eval: the card's resize + center crop, features cached; squash_crop_flip (the paper's code): Resize([resize, resize]), "
                                 "a random crop and a horizontal flip, a fresh draw every training step and one seeded draw per scored image", choices=TRANSFORMS),
            "image_embed": Setting("str", "linear_bn (the paper's code): Linear(feature, embed) + BatchNorm1d(embed, momentum 0.01); linear: the linear layer only",
                                   choices=("linear_bn", "linear")),
            "init": Setting("str", "paper_code: N(0, 0.02) image embedding, U(-0.1, 0.1) word embedding and output layer, zero biases; pytorch: its default initialisation",
                            choices=("paper_code", "pytorch")),
            "dropout_at": Setting("str", "output (the paper's code): dropout on the LSTM output only; input_output: also on its input (image and word embeddings)",
                                  choices=("output", "input_output")),
            "tokenizer": Setting("str", "nltk (the paper's code): nltk's Treebank word tokens of the lower-cased caption, punctuation kept; "
                                 "ptb: as coco-caption's scoring tokenizes (punctuation removed)", choices=TOKENIZERS),
            "cut_train_captions": Setting("bool", "cut training captions at max_length words (the paper's code does not cut them)"),
            "beam_end": Setting("str", "stop: a beam that emits <end> is finished and keeps its score, the best finished caption wins; ignore (the paper's code): "
                                "<end> is not special, every beam runs max_length steps and is ranked by the sum of all its log-probabilities", choices=("stop", "ignore")),
            "loss_norm": Setting("str", "tokens: cross-entropy averaged over the non-pad words; positions (the paper's code): summed over them, divided by batch x longest caption",
                                 choices=("tokens", "positions")),
            "preset": Setting("str", "paper_code: every choice of the paper's NIC code at once (default keeps the others as set)", choices=("default", *PRESETS)),
            "embed": Setting("int", "word and image embedding size", lo=1),
            "hidden": Setting("int", "LSTM hidden size", lo=1),
            "dropout": Setting("float", "dropout probability (where: dropout_at)", lo=0, hi=1, hi_open=True),
            "min_count": Setting("int", "a training-caption word enters the vocabulary when seen this often", lo=1),
            "max_length": Setting("int", "words per decoded caption at most (and per training caption with cut_train_captions)", lo=1),
            "beam": Setting("int", "beam width of the caption search (1: greedy)", lo=1),
            "batch_size": Setting("int", "captions per training step", lo=1),
            "lr": Setting("float", "Adam learning rate", lo=0, lo_open=True),
            "epochs": Setting("int", "training epochs over every caption of train2014", lo=1),
            "meteor": Setting("bool", "compute METEOR (a Java process; the demo leaves it out for time)"),
        }

    def preset(self, group: str, name: str) -> dict[str, Any]:
        if name == "default":
            return {}
        if name not in PRESETS:
            raise BenchError(f"unknown coco_cap preset '{name}'", f"use default or {' or '.join(PRESETS)}")
        return PRESETS[name]

    def validate(self, config: dict[str, Any]) -> None:
        if config["encoder"] == "frozen" and config["encoder_lr"] != self.default_config()["encoder_lr"]:
            raise BenchError("encoder_lr applies to encoder=finetune only (a frozen encoder does not train)", "drop --set encoder_lr, or --set encoder=finetune")

    def check(self, data: DataLocator, card: Any, config: dict[str, Any]) -> DataCheck:
        from bench.data.fingerprint import Fingerprint

        if config["transform"] == "squash_crop_flip" and card.preprocessing.crop > card.preprocessing.resize:
            raise BenchError(f"transform=squash_crop_flip crops {card.preprocessing.crop} px out of {card.preprocessing.resize} x {card.preprocessing.resize}: the crop is larger",
                             "pass --resize at least --crop, or --set transform=eval")
        root = data.dir("coco")
        sp = caption_splits(root, config["split"])
        fp = (Fingerprint().files("train", root, sp.train_paths, sizes=False).values("train/captions", sp.train_captions)
              .files("scored", root, sp.eval_paths).values("scored/references", [[i, sp.references[i]] for i in sp.eval_ids]))
        summary = f"{config['split']}: train {len(sp.train_paths)} images, {sum(map(len, sp.train_captions))} captions; scored {len(sp.eval_ids)} images"
        return DataCheck({"coco": summary}, fp.hexdigest(), len(sp.eval_ids))

    def plan(self, ctx: RunContext) -> Plan:
        from bench.backbones.view import BackboneView
        from bench.captioning.model import NICOptions
        from bench.captioning.train import DecoderConfig, Encoder, pooled_features
        from bench.captioning.vocab import Vocabulary, tokens
        from bench.evaluation import Split

        cfg, card = ctx.config, ctx.backbone.card
        root = ctx.data.dir("coco")
        sp = caption_splits(root, cfg["split"])
        view = BackboneView(ctx.backbone.model, card)
        prep = card.to_dict()["preprocessing"]
        finetune = cfg["encoder"] == "finetune"
        # the backbone runs in every training step when it trains, when its BatchNorm does, or when every step draws a new crop
        in_loop = finetune or cfg["encoder_bn"] == "train" or cfg["transform"] != "eval"
        changes_backbone = finetune or cfg["encoder_bn"] == "train"
        look = {"preprocessing": prep, "transform": cfg["transform"]}
        stages, feats = {}, {}
        for role, paths in (("train", sp.train_paths), ("scored", sp.eval_paths)):
            stages[role] = ctx.stage_dir("features", {**look, "images": [str(p.relative_to(root)) for p in paths]})
            if not (role == "train" and in_loop) and not (role == "scored" and changes_backbone):
                feats[role] = pooled_features(view, paths, stages[role], ctx.device, ctx.batch_size, ctx.workers, ctx.progress, cfg["transform"], ctx.seed)
        train_tokens = [[tokens(c, cfg["tokenizer"]) for c in caps] for caps in sp.train_captions]
        vocab = Vocabulary.build((t for caps in train_tokens for t in caps), cfg["min_count"])
        cut = cfg["max_length"] if cfg["cut_train_captions"] else None
        encoded = [[vocab.encode(t, cut) for t in caps] for caps in train_tokens]
        dec_cfg = DecoderConfig(cfg["embed"], cfg["hidden"], cfg["dropout"], cfg["epochs"], cfg["batch_size"], cfg["lr"], cfg["loss_norm"],
                                NICOptions(cfg["image_embed"], cfg["init"], cfg["dropout_at"]))
        # what the decoder depends on: the training features (their stage's key: weights, preprocessing, transform, images), the captions and the settings
        stage = ctx.stage_dir("decoder", {"features": stages["train"].name, "vocab": list(vocab.words), "decoder": asdict(dec_cfg),
                                          "captions": [[c for c in caps] for caps in encoded],
                                          **({"encoder_loop": {"encoder_lr": cfg["encoder_lr"] if finetune else None, "encoder_bn": cfg["encoder_bn"]}} if in_loop else {})})
        encoder = Encoder(view, sp.train_paths, cfg["encoder_lr"] if finetune else None, ctx.workers, cfg["encoder_bn"], cfg["transform"]) if in_loop else None
        decoder, info = self._decoder(ctx, feats.get("train"), encoded, len(vocab), dec_cfg, stage, encoder)
        if changes_backbone:  # the scored images' features, from the backbone as the stage left it (weights or BatchNorm statistics)
            feats["scored"] = pooled_features(view, sp.eval_paths, stage / "scored", ctx.device, ctx.batch_size, ctx.workers, ctx.progress, cfg["transform"], ctx.seed)
        decoder = decoder.to(ctx.device).eval()
        split = Split(cfg["split"], _Features(feats["scored"], sp.eval_ids), CaptionEvaluator(sp.references, vocab, cfg["meteor"]),
                      forward=lambda batch: decoder.beam_search(batch[0], cfg["beam"], cfg["max_length"], cfg["beam_end"]), model=decoder)
        details = {"decoder": info, "vocabulary": {"words": len(vocab) - 4, "min_count": cfg["min_count"], "tokenizer": cfg["tokenizer"]},
                   "split": {"val2014": "train2014 -> val2014", "karpathy": "Karpathy train + restval -> test"}[cfg["split"]],
                   "feature_dim": int(feats["scored"].shape[1]), "encoder": cfg["encoder"], "preset": cfg["preset"],
                   "decoding": f"beam {cfg['beam']} (<end>: {cfg['beam_end']}), at most {cfg['max_length']} words"}
        return Plan([split], details)

    @staticmethod
    def _decoder(ctx: RunContext, features: torch.Tensor | None, encoded: list[list[list[int]]], vocab_size: int, cfg: Any, stage: Path,
                 encoder: Any = None) -> tuple[Any, dict[str, Any]]:
        """Rank 0 trains the decoder stage (one process per stage: the stage is locked); under
        torchrun the other ranks then load it. An error on rank 0 stops every rank with its line."""
        from bench.captioning.train import train_decoder
        from bench.evaluation import broadcast

        def train() -> tuple[Any, dict[str, Any]]:
            return train_decoder(features, encoded, vocab_size, cfg, stage, ctx.device, ctx.seed, ctx.progress, ctx.log, encoder)

        if ctx.world_size == 1:
            return train()
        error, result = None, None
        if ctx.rank == 0:
            try:
                result = train()
            except BenchError as exc:
                error = (exc.message, exc.hint)
        error = broadcast(error)
        if error is not None:
            raise BenchError(*error)
        return result if result is not None else train()  # the other ranks load rank 0's finished stage
