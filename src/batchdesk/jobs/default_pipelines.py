"""The pipelines we ship: written as the same JSON a studio would store, and checked like it."""

from typing import Any


def default_pipelines() -> list[dict[str, Any]]:
    """Return the shipped pipelines as JSON-ready dicts: name, description, version, steps."""
    return [
        {
            "name": "original",
            "description": "Keep each PNG exactly as submitted (no processing).",
            "version": 1,
            "steps": [],
        },
        {
            "name": "web-delivery",
            "description": (
                "Full-size PNG, a web JPEG (long edge 2000 px, quality 85, colour profile kept) "
                "and a 400 px thumbnail."
            ),
            "version": 1,
            "steps": [
                {"op": "output", "format": "png", "compress_level": 6},
                {"op": "fit", "mode": "long_edge", "size": 2000},
                {
                    "op": "output",
                    "format": "jpeg",
                    "suffix": "_web",
                    "quality": 85,
                    "keep_icc": True,
                },
                {"op": "thumbnail", "size": 400, "format": "jpeg", "suffix": "_thumb"},
            ],
        },
        {
            "name": "ecommerce-square",
            "description": (
                "Trim the background, fit into 1800 x 1800 and centre on a white 2000 x 2000 "
                "canvas; JPEG quality 90."
            ),
            "version": 1,
            "steps": [
                {"op": "trim", "tolerance": 8},
                {"op": "fit", "mode": "box", "width": 1800, "height": 1800},
                {"op": "pad", "width": 2000, "height": 2000, "background": "#ffffff"},
                {"op": "output", "format": "jpeg", "suffix": "_square", "quality": 90},
            ],
        },
        {
            "name": "thumbnails",
            "description": "JPEG thumbnails with long edges of 256 and 512 px.",
            "version": 1,
            "steps": [
                {"op": "thumbnail", "size": 256, "suffix": "_thumb256"},
                {"op": "thumbnail", "size": 512, "suffix": "_thumb512"},
            ],
        },
        {
            "name": "optimised-png",
            "description": (
                "Strip text and EXIF metadata (the colour profile stays) and recompress as PNG "
                "at level 9."
            ),
            "version": 1,
            "steps": [
                {"op": "strip_metadata", "keep_icc": True},
                {"op": "output", "format": "png", "compress_level": 9},
            ],
        },
    ]
