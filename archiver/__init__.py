"""archiver: a permanent SQL archive of Real-time Streaming (Millicast) analytics."""

__version__ = "0.1.0"
