"""What the backbone adapter costs, per family, in one process (runs alternated, best of each):

- CAM: forward + CAMs through the adapter (CamComputer.for_view: one hook, one einsum; a ViT's
  patch tokens) against the bare forward of the same model and batch; for a ResNet also against
  the name-based extractor tasks used before the adapter (CamExtractor(model, 'layer4', 'fc')).
- Detection body: a training step (forward and backward) of the FPN body on the adapter's stage
  maps (hooks on the stage modules, the forward stopped after the last one) against the same FPN
  on the stages called by hand; a ViT's simple feature pyramid against its token map called by
  hand. Goal: within noise (a few percent) of each baseline.

    python benchmarks/adapter_overhead.py [--archs resnet50,convnext_tiny,vit_b_16] [--batch 8] [--size 224] [--repeat 5]
"""

from __future__ import annotations

import argparse
from collections import OrderedDict

import torch
import torchvision

from bench.backbones.view import BackboneView
from bench.cam import CamComputer, CamExtractor
from bench.cards import BackboneCard, Preprocessing
from cam_overhead import interleaved  # this folder is on the path when a script here runs


def by_hand(arch: str, model: torch.nn.Module):
    """The stage maps (a ViT: its patch-token map) from explicit module calls, as code written for one family would."""
    if arch.startswith("resnet"):
        def maps(x):
            x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
            out = []
            for layer in (model.layer1, model.layer2, model.layer3, model.layer4):
                x = layer(x)
                out.append(x)
            return OrderedDict((str(i), m) for i, m in enumerate(out))
    elif arch.startswith("convnext"):
        def maps(x):
            out = []
            for i, block in enumerate(model.features):
                x = block(x)
                if i in (1, 3, 5, 7):
                    out.append(x)
            return OrderedDict((str(i), m) for i, m in enumerate(out))
    else:
        def maps(x):
            tokens = model._process_input(x)
            tokens = model.encoder(torch.cat([model.class_token.expand(x.shape[0], -1, -1), tokens], 1))[:, 1:]
            side = int(tokens.shape[1] ** 0.5)
            return OrderedDict([("0", tokens.transpose(1, 2).reshape(x.shape[0], -1, side, side))])
    return maps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", default="resnet50,convnext_tiny,vit_b_16")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool

    from bench.detection.bodies import StageMaps, VitMap

    x = torch.randn(args.batch, 3, args.size, args.size)
    labels = torch.randint(0, 1000, (args.batch,))
    print(f"batch {args.batch} at {args.size}px, {torch.get_num_threads()} threads, best of {args.repeat} alternated runs")
    for arch in args.archs.split(","):
        torch.manual_seed(0)
        model = torchvision.models.get_model(arch, weights=None).eval()
        plain = torchvision.models.get_model(arch, weights=None).eval()
        plain.load_state_dict(model.state_dict())
        view = BackboneView(model, BackboneCard(name=arch, arch=arch, preprocessing=Preprocessing(resize=args.size, crop=args.size)))
        view.check_cam()
        cams = CamComputer.for_view(view, "cam")

        def adapter() -> None:
            cams.extractor(x)
            cams.extractor.cams(labels)
        fns = [lambda: plain(x), adapter]
        if view.parts.family == "resnet":
            before = CamExtractor(plain, "layer4", "fc")

            def names() -> None:
                before(x)
                before.cams(labels)
            fns.append(names)
        with torch.inference_mode():
            times = interleaved(fns, args.repeat)
        cams.close()
        line = f"{arch}: CAM forward {times[0] * 1000:.1f} ms, + CAMs through the adapter {times[1] * 1000:.1f} ms ({100 * (times[1] / times[0] - 1):+.1f}%)"
        if len(times) > 2:
            before.remove()
            line += f", name-based extractor {times[2] * 1000:.1f} ms (adapter / name-based {times[1] / times[2]:.3f})"
        print(line, f"[{view.cam_method}]")
        # detection body: forward + backward
        if view.parts.family == "vit":
            body, hand = VitMap(model), by_hand(arch, plain)
            fpn_a = fpn_b = None
        else:
            specs = view.feature_specs()
            body = StageMaps(model, tuple(s.name for s in specs), [s.channels for s in specs], [s.stride for s in specs])
            hand = by_hand(arch, plain)
            fpn_a = FeaturePyramidNetwork([s.channels for s in specs], 256, extra_blocks=LastLevelMaxPool())
            fpn_b = FeaturePyramidNetwork([s.channels for s in specs], 256, extra_blocks=LastLevelMaxPool())
            fpn_b.load_state_dict(fpn_a.state_dict())

        def step(maps_fn, fpn):
            def run() -> None:
                out = maps_fn(x)
                out = fpn(out) if fpn is not None else (out if isinstance(out, dict) else {"0": out})
                sum(m.float().mean() for m in out.values()).backward()
            return run
        model.train(), plain.train()
        ta, tb = interleaved([step(body, fpn_a), step(hand, fpn_b)], args.repeat)
        print(f"{arch}: detection body step (forward + backward) through the adapter {ta * 1000:.1f} ms, by hand {tb * 1000:.1f} ms, "
              f"ratio {ta / tb:.3f}")


if __name__ == "__main__":
    main()
