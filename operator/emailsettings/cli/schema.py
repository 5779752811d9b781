"""`emailsettings schema`: print or write the CRD and its kubeconform JSON Schema."""

from __future__ import annotations

import argparse
from pathlib import Path

from emailsettings.api import schema_export


def register(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subcommands.add_parser(
        "schema",
        help="print the EmailSettings CRD or its JSON Schema for kubeconform",
        description="Print the EmailSettings CRD, or the JSON Schema kubeconform uses to "
        "check manifests offline (structure only; the CEL rules and address syntax are "
        "checked by 'emailsettings validate'). With --write DIR, write both files the way "
        "crds/ holds them; then run kubeconform with -schema-location "
        "'DIR/jsonschema/{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json'.",
    )
    parser.add_argument(
        "--format",
        choices=("crd", "json-schema"),
        default="crd",
        help="what to print (default: crd)",
    )
    parser.add_argument("--write", metavar="DIR", type=Path, help="write both files under DIR")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    argv = ["--format", args.format]
    if args.write is not None:
        argv += ["--write", str(args.write)]
    return schema_export.main(argv)
