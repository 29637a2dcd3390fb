// tapbridge_native: a vhost-user port (RawVhostUser in src/io/native-types.ts). See vhost-user.cc.
#pragma once

#include "common.h"

namespace tb {

// openVhostUser(name, { socket, mode }, onState) -> RawVhostUser
Napi::Value OpenVhostUser(const Napi::CallbackInfo& info);
// adoptVhostUser(device, name) -> a data worker's peer of that port (RawPort surface over the same rings)
Napi::Value AdoptVhostUser(const Napi::CallbackInfo& info);
Napi::Function InitVhostUserClass(Napi::Env env);

}  // namespace tb
