"""`bench score`: score predictions saved anywhere, in the field's standard formats."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bench.errors import BenchError


def register(sub: Any, command: Any) -> None:
    """Add this command's parser to `sub` (`command(sub, name, ...)` adds the common flags)."""
    p = command(sub, "score", help="score predictions made anywhere (prints JSON)", description="Score predictions saved in the field's standard formats, with the functions bench's tasks use.")
    score = p.add_subparsers(dest="what", metavar="WHAT", required=True)
    q = command(
        score, "wsol", help="MaxBoxAcc / MaxBoxAccV2 / PxAP of saved score maps (wsolevaluation's format)",
        description="Score <image_id>.npy score maps against wsolevaluation metadata (image_ids, class_labels, image_sizes, localization): "
                    "MaxBoxAcc per IoU threshold for boxes (CUB, ILSVRC), PxAP for masks (OpenImages30k).",
        epilog="examples:\n  bench score wsol --scoremaps scoremaps/ --metadata metadata/CUB/test\n"
               "  bench score wsol --scoremaps scoremaps/ --metadata metadata/CUB/test --predictions preds.csv\n"
               "  bench score wsol --scoremaps scoremaps/ --metadata metadata/CUB/test --iou 50 --largest-contour   # MaxBoxAcc (V1)\n"
               "  bench score wsol --scoremaps scoremaps/ --metadata metadata/OpenImages/test --mask-root dataset/OpenImages",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    q.add_argument("--scoremaps", required=True, help="folder of <image_id>.npy maps, 2-D floats in [0, 1]")
    q.add_argument("--metadata", required=True, help="wsolevaluation metadata folder of the split")
    q.add_argument("--interval", type=float, default=0.001, help="CAM threshold interval (default 0.001, wsolevaluation's evaluate_wsol default)")
    q.add_argument("--iou", default="30,50,70", help="IoU thresholds in percent (default 30,50,70: MaxBoxAccV2)")
    q.add_argument("--largest-contour", action="store_true", help="use only the largest contour (MaxBoxAcc V1: with --iou 50)")
    q.add_argument("--predictions", help="predicted class per image ('<image_id>,<class>' lines or a JSON object): adds top-1 MaxBoxAcc, where the class must be right too")
    q.add_argument("--mask-root", help="for mask metadata (OpenImages30k): the folder the mask paths are relative to; gives PxAP")

    q = command(
        score, "voc", help="VOC07 mAP (11-point and area), COCO-style AP and per-class AP of detections",
        description="Score detections against a VOCdevkit split, as the devkit does (11-point AP at IoU 0.5, difficult objects ignored).",
        epilog="examples:\n  bench score voc --detections results/ --devkit /data/VOCdevkit          # comp4_det_test_<class>.txt files\n"
               "  bench score voc --detections dets.json --devkit /data/VOCdevkit --split 2007:test",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    q.add_argument("--detections", required=True, help="folder of comp4_det_<split>_<class>.txt files ('image_id score x1 y1 x2 y2', 1-based) or a COCO-style results .json")
    q.add_argument("--devkit", required=True, help="the VOCdevkit folder")
    q.add_argument("--split", default="2007:test", help="YEAR:SPLIT to score against (default 2007:test); result files of other splits are left out")
    q.add_argument("--allow-missing-classes", action="store_true", help="score a class with no result file as AP 0 (otherwise refused)")

    q = command(
        score, "captions", help="BLEU-1..4, METEOR, ROUGE-L, CIDEr of captions (coco-caption's scorers)",
        description="Score a COCO-format results file ([{\"image_id\": int, \"caption\": str}]) against a COCO captions file, as coco-caption does "
                    "(PTB tokenizer, pycocoevalcap's scorers; SPICE off). Needs Java for the tokenizer and METEOR; without it a pure-Python "
                    "tokenizer stands in, METEOR is reported as unavailable, and the output says so.",
        epilog="examples:\n  bench score captions --results captions_val2014_results.json --annotations coco/annotations/captions_val2014.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    q.add_argument("--results", required=True, help="a JSON list of {image_id, caption}, one per image")
    q.add_argument("--annotations", required=True, help="a COCO captions file (captions_val2014.json)")

    q = command(
        score, "mce", help="ImageNet-C mCE and relative mCE of per-corruption x severity errors",
        description="mCE (each corruption's mean error over severities 1-5 divided by AlexNet's, averaged over the 15 benchmark corruptions), "
                    "relative mCE (with --clean-error), and the four extra corruptions' mean error apart, from a JSON or CSV of errors in percent.",
        epilog="examples:\n  bench score mce --errors errors.json --clean-error 23.85\n  bench score mce --errors errors.csv    # lines corruption,severity,error",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    q.add_argument("--errors", required=True, help="JSON {corruption: {severity: error %}} (or a list of five) or CSV 'corruption,severity,error'")
    q.add_argument("--clean-error", type=float, help="the model's clean top-1 error in percent: adds relative CE and relative mCE")

    q = command(
        score, "ood", help="OOD detection metrics of saved scores: TNR/FPR at TPR 95%, detection acc., AUROC, AUPR",
        description="OOD detection metrics of in- and out-of-distribution scores saved by any tool (higher = more in-distribution, e.g. max "
                    "softmax probability): TNR at TPR 95% and detection accuracy (ODIN's conventions, in-distribution positive), AUROC, "
                    "AUPR-in/out (average precision), FPR at TPR 95% (in-distribution positive) and OpenOOD v1.5's FPR@95 (OOD positive), per "
                    "OOD file and their mean; or the same from the samples file of a bench OOD run (--samples).",
        epilog="examples:\n  bench score ood --in cifar100_msp.npy --out lsun_msp.npy isun_msp.npy\n"
               "  bench score ood --in in.txt --out out.txt --names svhn\n"
               "  bench score ood --samples results/samples/<run id>.jsonl --score energy",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    q.add_argument("--in", dest="in_scores", help="in-distribution scores: a 1-D .npy array, or text with one number per line")
    q.add_argument("--out", dest="out_scores", nargs="+", help="out-of-distribution scores, one file per OOD set")
    q.add_argument("--names", nargs="+", help="names of the --out sets (default: their file names)")
    q.add_argument("--samples", help="instead of --in/--out: the samples file of a cifar100_ood or imagenet_ood run")
    q.add_argument("--score", help="with --samples: which stored score (msp, max_logit, energy, odin; default msp)")
    p.set_defaults(handler=cmd_score)


def cmd_score(args: argparse.Namespace) -> int:
    from bench.score import score_captions, score_voc, score_wsol

    if args.what == "mce":
        from bench.score import score_mce

        print(json.dumps(score_mce(Path(args.errors), args.clean_error), indent=2))
        return 0
    if args.what == "ood":
        from bench.score import score_ood, score_ood_samples

        if args.samples:
            if args.in_scores or args.out_scores:
                raise BenchError("--samples replaces --in and --out", "pass either --samples FILE or --in FILE --out FILE ...")
            print(json.dumps(score_ood_samples(Path(args.samples), args.score or "msp"), indent=2))
            return 0
        if args.score:
            raise BenchError("--score picks a score stored in a --samples file", "with --in/--out, save the score you want in the files")
        lacking = [flag for flag, value in (("--in FILE", args.in_scores), ("--out FILE [FILE ...]", args.out_scores)) if not value]
        if lacking:
            raise BenchError(f"bench score ood needs {' and '.join(lacking)} (or --samples FILE)", "e.g. bench score ood --in in.npy --out ood1.npy ood2.npy")
        print(json.dumps(score_ood(Path(args.in_scores), [Path(p) for p in args.out_scores], args.names), indent=2))
        return 0
    if args.what == "captions":
        print(json.dumps(score_captions(Path(args.results), Path(args.annotations)), indent=2))
        return 0
    if args.what == "voc":
        print(json.dumps(score_voc(Path(args.detections), Path(args.devkit), args.split, args.allow_missing_classes), indent=2))
        return 0

    try:
        ious = tuple(int(v) for v in args.iou.split(","))
    except ValueError:
        raise BenchError(f"--iou expects comma-separated integers, got '{args.iou}'", "e.g. --iou 30,50,70") from None
    if not all(0 < v <= 100 for v in ious):
        raise BenchError(f"--iou values must be percentages in (0, 100], got '{args.iou}'", "e.g. --iou 30,50,70")
    result = score_wsol(Path(args.scoremaps), Path(args.metadata), args.interval, ious, multi_contour=not args.largest_contour,
                        predictions=Path(args.predictions) if args.predictions else None, mask_root=Path(args.mask_root) if args.mask_root else None)
    print(json.dumps(result, indent=2))
    return 0

