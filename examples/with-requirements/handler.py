"""A handler whose dependency comes from requirements.txt (installed at deploy time)."""

import humanize


def handler(event, context):
    size = int(event.get("bytes", 123456789))
    return {"bytes": size, "human": humanize.naturalsize(size)}
