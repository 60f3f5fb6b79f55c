# Request handlers for the model store: uploads (chunked, resumable), store status, rollback/confirm,
# trusted keys. See docs/protocol.md ("Model store and upload").
#
# upload.chunk is the hot path: params [offset, bytes, crc32]; the answer is the offset the device holds
# afterwards. A chunk at the wrong offset or with a bad CRC is ignored and answered with the unchanged
# offset, so the host goes back to it (go-back-N); nothing else is allocated per chunk.
from mote.store import Store, StoreError


def register(link, store):
    def chunk(p):
        return store.chunk(p[0], p[1], p[2])

    def rollback(p):
        return store.operator_rollback()

    link.on("upload.begin", store.begin)
    link.on("upload.chunk", chunk)
    link.on("upload.status", lambda p: store.upload_status())
    link.on("upload.commit", lambda p: store.commit())
    link.on("upload.abort", lambda p: store.abort())
    link.on("store.status", lambda p: store.status())
    link.on("store.check", lambda p: store.check())
    link.on("store.rollback", rollback)
    link.on("store.confirm", lambda p: store.confirm())
    link.on("keys.set", store.set_keys)
    link.on("keys.get", lambda p: store.get_keys())


__all__ = ("register", "Store", "StoreError")
