// tapbridge_native: while libuv is idle the data path waits for frames itself (see directpoll.cc).
#pragma once

#include "common.h"

namespace tb {

class Port;

// A started port enters its fd in the table (and leaves it when it stops or closes), whether direct
// polling is on or not, so that turning it on at run time covers the ports already started.
void DirectPollAdd(AddonData* d, int fd, Port* port);
void DirectPollRemove(AddonData* d, int fd);
// Frees the instance's state (the AddonData destructor, at env teardown).
void FreeDirectPoll(void* state);
void InitDirectPoll(Napi::Env env, Napi::Object exports);

}  // namespace tb
