{
  "targets": [
    {
      "target_name": "tapbridge_native",
      "sources": [
        "src/native/addon.cc",
        "src/native/port.cc",
        "src/native/port-ring.cc",
        "src/native/ifctl.cc",
        "src/native/linkmon.cc",
        "src/native/handover.cc",
        "src/native/netns.cc",
        "src/native/notify.cc",
        "src/native/vxlan.cc",
        "src/native/filelock.cc",
        "src/native/unixsock.cc",
        "src/native/busypoll.cc",
        "src/native/directpoll.cc",
        "src/native/vhost-user.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NAPI_DISABLE_CPP_EXCEPTIONS",
        "NODE_ADDON_API_DISABLE_DEPRECATED",
        # a callback into JS from a uv handle of a worker thread that is being terminated (process.exit) gets
        # napi_pending_exception; without this node-addon-api turns that into an exception it cannot throw and
        # aborts the process (exit 134); with it the call is dropped, as the terminating thread's JS would be
        "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"
      ],
      "cflags!": ["-fexceptions", "-O3"],
      "cflags_cc!": ["-fexceptions", "-O3"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-fno-exceptions"],
      "cflags_cc": ["-O2", "-Wall", "-Wextra", "-fno-exceptions"],
      "conditions": [
        ["OS!='linux'", { "type": "none" }]
      ]
    }
  ]
}
