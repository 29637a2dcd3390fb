// tapbridge_native: the data path waits for frames in its own epoll set (see directpoll.cc).
#pragma once

#include "common.h"

namespace tb {

class Port;

// A started port registers its fd (and unregisters it when it stops or closes). Both are cheap
// no-ops while direct polling is off; the registration is kept either way so that turning it on
// at run time covers the ports already started.
void DirectPollAdd(AddonData* d, int fd, Port* port);
void DirectPollRemove(AddonData* d, int fd);
// Frees the instance's state (the AddonData destructor, at env teardown).
void FreeDirectPoll(void* state);
void InitDirectPoll(Napi::Env env, Napi::Object exports);

}  // namespace tb
