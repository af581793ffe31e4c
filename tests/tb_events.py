"""Read TensorBoard event files back without TensorFlow or the tensorboard package: the TFRecord framing
(length, CRC, payload, CRC) around tensorboardX's own ``Event`` protobuf."""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np


def read_events(log_dir: str | Path) -> dict[str, list]:
    """{tag: [(step, value)]} of every event file under ``log_dir``: a float for scalars, a uint8 [H, W, C] array
    for images."""
    from PIL import Image
    from tensorboardX.proto import event_pb2
    import io

    out: dict[str, list] = {}
    for path in sorted(Path(log_dir).rglob("events.out.tfevents.*")):
        data = path.read_bytes()
        pos = 0
        while pos + 12 <= len(data):
            (length,) = struct.unpack("<Q", data[pos:pos + 8])
            payload = data[pos + 12:pos + 12 + length]
            pos += 12 + length + 4
            event = event_pb2.Event.FromString(payload)
            for value in event.summary.value:
                if value.HasField("image"):
                    with Image.open(io.BytesIO(value.image.encoded_image_string)) as img:
                        item = np.asarray(img.convert("RGB"))
                else:
                    item = float(value.simple_value)
                out.setdefault(value.tag, []).append((event.step, item))
    return out
