#!/bin/sh
# The system protoc (3.21.12) matches libprotobuf.so.32, which libtorch_cpu.so loads.
exec /usr/bin/protoc "$@"
