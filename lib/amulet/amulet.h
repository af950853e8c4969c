/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#define __AMULET_H_INSIDE__

#include <amulet/amu-export.h>
#include <amulet/amu-version.h>
#include <amulet/amu-error.h>

#undef __AMULET_H_INSIDE__
