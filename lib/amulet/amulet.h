/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#define __AMULET_H_INSIDE__

#include <amulet/amu-export.h>
#include <amulet/amu-version.h>
#include <amulet/amu-error.h>
#include <amulet/amu-types.h>
#include <amulet/amu-sample.h>
#include <amulet/amu-export-format.h>
#include <amulet/amu-disclosure.h>
#include <amulet/amu-pairing-request.h>
#include <amulet/amu-device.h>
#include <amulet/amu-session.h>
#include <amulet/amu-context.h>
#include <amulet/amu-consent.h>
#include <amulet/amu-data-export.h>
#include <amulet/amu-update.h>
#include <amulet/amu-scan.h>

#undef __AMULET_H_INSIDE__
