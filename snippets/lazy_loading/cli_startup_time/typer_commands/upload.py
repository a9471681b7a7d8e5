"""``orders upload`` for Typer: uploads an export with boto3 (a heavy import)."""

from __future__ import annotations

from typing import Annotated

import boto3
import typer

__all__ = ["upload"]


def upload(path: Annotated[str, typer.Argument(help="The export to upload")]) -> None:
    """Upload an export to S3"""
    print(f"would upload {path} with boto3 {boto3.__version__}")
