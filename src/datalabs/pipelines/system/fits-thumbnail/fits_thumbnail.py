"""PNG thumbnail of the first image HDU of a FITS file (no imaging library: PNG is written with zlib)."""

import struct
import sys
import zlib
from pathlib import Path

import numpy as np
from astropy.io import fits


def png(path, image):
    height, width = image.shape
    raw = b"".join(b"\x00" + image[row].tobytes() for row in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    Path(path).write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def main(path, size):
    with fits.open(path) as hdus:
        hdu = next((h for h in hdus if h.data is not None and h.data.ndim >= 2), None)
        if hdu is None:
            sys.exit(f"{Path(path).name}: no image HDU")
        Path("header.txt").write_text(hdu.header.tostring(sep="\n") + "\n")
        data = np.nan_to_num(np.asarray(hdu.data, dtype=float))
        shape = hdu.data.shape
    while data.ndim > 2:
        data = data[0]
    step = max(1, int(np.ceil(max(data.shape) / size)))
    data = data[::step, ::step]
    lo, hi = np.percentile(data, [1.0, 99.5])
    scaled = np.clip((data - lo) / ((hi - lo) or 1.0), 0, 1)
    stretched = np.arcsinh(10 * scaled) / np.arcsinh(10)
    png("thumbnail.png", (255 * stretched[::-1]).astype(np.uint8))  # FITS rows go up, PNG rows down
    print(f"{Path(path).name}: {shape} -> thumbnail {data.shape[1]}x{data.shape[0]}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
