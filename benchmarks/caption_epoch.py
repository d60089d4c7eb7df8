"""One NIC training epoch on cached features (encoder=frozen) against end to end through the
backbone (encoder=finetune), on the mini COCO with the mini ResNet (or --arch resnet50 at
--size 224 for the real proportions, slow on a CPU): seconds per epoch and their ratio. The
cached path also pays once for computing the features, printed beside it.

    python benchmarks/caption_epoch.py [--images 500] [--arch mini] [--batch 20]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from bench.backbones.view import BackboneView
from bench.captioning.train import DecoderConfig, Encoder, pooled_features, train_decoder
from bench.captioning.vocab import Vocabulary, tokens
from bench.cards import BackboneCard, Preprocessing
from bench.data.coco import read_captions
from bench.mini.build import MiniSpec, ensure_data
from bench.mini.model import mini_resnet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--arch", default="mini", help="mini (the mini ResNet at 64 px) or a torchvision name such as resnet50")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = ensure_data(Path(tmp), MiniSpec(seed=0, train=args.images, val=40)) / "coco"
        refs = read_captions(root / "annotations" / "captions_train2014.json")
        ids = sorted(refs.files)
        paths = [root / "train2014" / refs.files[i] for i in ids]
        toks = [[tokens(c) for c in refs.captions[i]] for i in ids]
        vocab = Vocabulary.build((t for caps in toks for t in caps), 2)
        encoded = [[vocab.encode(t, 16) for t in caps] for caps in toks]
        cfg = DecoderConfig(100, 300, 0.1, 1, args.batch, 0.001)

        def view() -> BackboneView:
            torch.manual_seed(0)
            if args.arch == "mini":
                model = mini_resnet(10)
            else:
                import torchvision

                model = torchvision.models.get_model(args.arch, weights=None)
            card = BackboneCard(name=args.arch, arch=args.arch, preprocessing=Preprocessing(resize=args.size, crop=args.size))
            return BackboneView(model.eval(), card)
        start = time.perf_counter()
        features = pooled_features(view(), paths, Path(tmp) / "features", "cpu", 100, 0, False)
        t_features = time.perf_counter() - start
        start = time.perf_counter()
        train_decoder(features, encoded, len(vocab), cfg, Path(tmp) / "frozen", "cpu", seed=0)
        t_frozen = time.perf_counter() - start
        start = time.perf_counter()
        train_decoder(None, encoded, len(vocab), cfg, Path(tmp) / "finetune", "cpu", seed=0, encoder=Encoder(view(), paths, 1e-4))
        t_finetune = time.perf_counter() - start
    print(f"{args.arch} at {args.size} px, {len(ids)} images x 5 captions, batch {args.batch}, {torch.get_num_threads()} threads")
    print(f"  features once: {t_features:.1f} s")
    print(f"  epoch on cached features (encoder=frozen): {t_frozen:.1f} s")
    print(f"  epoch end to end (encoder=finetune):       {t_finetune:.1f} s")
    print(f"  end to end / cached: {t_finetune / t_frozen:.1f}x per epoch")


if __name__ == "__main__":
    main()
