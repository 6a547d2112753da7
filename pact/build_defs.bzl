"""Build macros shared by every package of the project."""

# Warnings for our code. LibTorch's headers arrive through -isystem, so theirs stay quiet.
PACT_COPTS = [
    "-Wall",
    "-Wextra",
]

def pact_proto(name, src, deps = [], visibility = None):
    """proto_library `<name>_proto` + cc_proto_library `<name>_cc_proto` for one .proto file."""
    native.proto_library(
        name = name + "_proto",
        srcs = [src],
        deps = [d + "_proto" for d in deps],
        visibility = visibility,
    )
    native.cc_proto_library(
        name = name + "_cc_proto",
        deps = [":" + name + "_proto"],
        visibility = visibility,
    )

def pact_component(name, srcs, hdrs = [], deps = [], options_proto = None, options_deps = [], visibility = None, **kwargs):
    """A registered component: its options proto and an alwayslink cc_library.

    The component's .cc registers itself at static-initialization time, and nothing else in
    the binary refers to it; without alwayslink the linker drops it from //tools:train while
    dynamically linked tests would still see it. The macro makes that impossible to forget.

    Creates `:<name>` (alwayslink) and, with `options_proto = "x_options.proto"`,
    `:x_options_proto` and `:x_options_cc_proto`.
    """
    all_deps = list(deps)
    if options_proto:
        base = options_proto[:-len(".proto")]
        pact_proto(base, options_proto, deps = options_deps, visibility = ["//visibility:public"])
        all_deps.append(":" + base + "_cc_proto")
    native.cc_library(
        name = name,
        srcs = srcs,
        hdrs = hdrs,
        copts = PACT_COPTS + kwargs.pop("copts", []),
        deps = all_deps,
        alwayslink = True,
        visibility = visibility,
        **kwargs
    )
