"""A file a child process writes its log into, read while the child still writes.

The child shares the file's open file description with the test, so a seek and
read by the test would move the child's write position, and the child's next
line would overwrite older ones. The file is opened O_APPEND (the child always
writes at the end) and read with pread, which leaves the shared offset alone.
"""
import os
import tempfile


class ChildLog:
    def __init__(self, path=None):
        if path is None:
            fd, path = tempfile.mkstemp(prefix="childlog.")
            os.close(fd)
            self.fd = os.open(path, os.O_RDWR | os.O_APPEND)
            os.unlink(path)
        else:
            self.fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC, 0o600)

    def fileno(self):
        return self.fd

    def read(self):
        chunks, offset = [], 0
        while True:
            chunk = os.pread(self.fd, 1 << 16, offset)
            if not chunk:
                return b"".join(chunks).decode(errors="replace")
            chunks.append(chunk)
            offset += len(chunk)

    def clear(self):
        os.ftruncate(self.fd, 0)

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __del__(self):
        self.close()
