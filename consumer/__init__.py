"""The events consumer: S3 notifications in, one workflow per uploaded object out."""
