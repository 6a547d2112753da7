#!/bin/sh
echo "coverage reports are not available in this offline build (remote_coverage_tools is a stub)" >&2
exit 1
