"""A producer of records with header *names* of any bytes, through the librdkafka confluent-kafka ships (ctypes).

confluent-kafka's ``Producer`` writes only UTF-8 header names (it turns bytes into
their ``repr``); the protocol carries bytes, so other clients can write any.
"""

from __future__ import annotations

import ctypes
import glob
import os

import confluent_kafka

_HERE = os.path.dirname(os.path.dirname(confluent_kafka.__file__))
LIB = ctypes.CDLL(sorted(glob.glob(os.path.join(_HERE, "confluent_kafka.libs", "librdkafka*.so*")))[0])
LIB.rd_kafka_conf_new.restype = ctypes.c_void_p
LIB.rd_kafka_conf_set.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]
LIB.rd_kafka_new.restype = ctypes.c_void_p
LIB.rd_kafka_new.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
LIB.rd_kafka_headers_new.restype = ctypes.c_void_p
LIB.rd_kafka_headers_new.argtypes = [ctypes.c_size_t]
LIB.rd_kafka_header_add.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_ssize_t, ctypes.c_char_p, ctypes.c_ssize_t]
LIB.rd_kafka_flush.argtypes = [ctypes.c_void_p, ctypes.c_int]
LIB.rd_kafka_producev.restype = ctypes.c_int
LIB.rd_kafka_destroy.argtypes = [ctypes.c_void_p]

class Raw:
    def __init__(self, bootstrap):
        conf = LIB.rd_kafka_conf_new()
        err = ctypes.create_string_buffer(512)
        for k, v in (("bootstrap.servers", bootstrap), ("message.max.bytes", "10000000")):
            assert LIB.rd_kafka_conf_set(conf, k.encode(), v.encode(), err, 512) == 0, err.value
        self.rk = LIB.rd_kafka_new(0, conf, err, 512)
        assert self.rk, err.value

    def produce(self, topic: str, value: bytes, headers: list[tuple[bytes, bytes | None]], partition: int = 0, key: bytes = b"k"):
        hdrs = LIB.rd_kafka_headers_new(len(headers))
        for name, val in headers:
            LIB.rd_kafka_header_add(hdrs, name, len(name), val, -1 if val is None else len(val))
        rc = LIB.rd_kafka_producev(ctypes.c_void_p(self.rk),
                                   ctypes.c_int(1), ctypes.c_char_p(topic.encode()),
                                   ctypes.c_int(3), ctypes.c_int32(partition),
                                   ctypes.c_int(4), ctypes.c_char_p(value), ctypes.c_size_t(len(value)),
                                   ctypes.c_int(5), ctypes.c_char_p(key), ctypes.c_size_t(len(key)),
                                   ctypes.c_int(7), ctypes.c_int(2),  # RD_KAFKA_MSG_F_COPY
                                   ctypes.c_int(10), ctypes.c_void_p(hdrs),
                                   ctypes.c_int(0))
        assert rc == 0, rc

    def flush(self):
        return LIB.rd_kafka_flush(ctypes.c_void_p(self.rk), 10000)

    def close(self):
        LIB.rd_kafka_destroy(ctypes.c_void_p(self.rk))
