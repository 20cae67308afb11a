"""Socket.IO: namespace handlers (``events``), event names (``names``), server pushes (``realtime``)."""
