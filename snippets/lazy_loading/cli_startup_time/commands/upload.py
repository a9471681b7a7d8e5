"""``orders upload``: uploads an export with boto3 (a heavy import)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import boto3
import click

__all__ = ["HELP", "add_arguments", "command", "main", "run"]

HELP = "Upload an export to S3"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path")


def run(args: argparse.Namespace) -> int:
    print(f"would upload {args.path} with boto3 {boto3.__version__}")
    return 0


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="orders upload", description=HELP)
    add_arguments(parser)
    return run(parser.parse_args(argv))


@click.command(help=HELP)
@click.argument("path")
def command(path: str) -> None:
    run(argparse.Namespace(path=path))
