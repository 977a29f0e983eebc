"""Upload a file with tuspy (the tus Python client) with sha1 Upload-Checksum on every chunk.

    python3 tus_upload.py <endpoint> <file> <chunk_size>

Prints the upload URL; a non-zero exit with the error otherwise.
"""
import os
import sys

from tusclient import client


def main() -> None:
    endpoint, path, chunk = sys.argv[1], sys.argv[2], int(sys.argv[3])
    c = client.TusClient(endpoint)
    uploader = c.uploader(
        path,
        chunk_size=chunk,
        metadata={"filename": os.path.basename(path)},
        upload_checksum=True,
    )
    uploader.upload()
    print(uploader.url)


if __name__ == "__main__":
    main()
