// tapbridge_native: a vhost-user port (RawVhostUser in src/io/native-types.ts). See vhost-user.cc.
#pragma once

#include "common.h"

namespace tb {

// openVhostUser(name, { socket, mode }, onState) -> RawVhostUser
Napi::Value OpenVhostUser(const Napi::CallbackInfo& info);
Napi::Function InitVhostUserClass(Napi::Env env);

}  // namespace tb
