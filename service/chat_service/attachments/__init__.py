"""File and image sharing: chunked, resumable uploads checked from the bytes, downloads."""
