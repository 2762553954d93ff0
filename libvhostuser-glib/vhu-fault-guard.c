/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 */

#include "config.h"

#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vhu-fault-guard.h"

/* Ranges live in a fixed table the signal handler scans without locks: a
 * slot is claimed by a compare-and-swap on its state, filled, then
 * published; the handler reads only published slots. */
#define MAX_GUARDS 4096

enum
{
  SLOT_FREE,
  SLOT_FILLING,
  SLOT_PUBLISHED,
};

struct _VhuFaultGuard
{
  gint state;
  guintptr start;
  guintptr end;
  gint faulted;
};

static VhuFaultGuard guards[MAX_GUARDS];
gint vhu_fault_guard_faults;
static guintptr page_size; /* read before the handler is installed: sysconf is not async-signal-safe */
static struct sigaction previous_action;

static void
pass_on (int sig, siginfo_t *info, void *ucontext)
{
  if (previous_action.sa_flags & SA_SIGINFO)
    {
      if (previous_action.sa_sigaction != NULL)
        {
          previous_action.sa_sigaction (sig, info, ucontext);
          return;
        }
    }
  else if (previous_action.sa_handler != SIG_DFL && previous_action.sa_handler != SIG_IGN)
    {
      previous_action.sa_handler (sig);
      return;
    }
  /* The default action: restore it; the access faults again and the
   * process dies of SIGBUS, as it would have without us. */
  signal (sig, SIG_DFL);
}

static void
on_sigbus (int sig, siginfo_t *info, void *ucontext)
{
  guintptr addr = (guintptr) info->si_addr;
  guintptr page = page_size;

  for (guint i = 0; i < MAX_GUARDS; i++)
    {
      VhuFaultGuard *g = &guards[i];

      if (__atomic_load_n (&g->state, __ATOMIC_ACQUIRE) != SLOT_PUBLISHED)
        continue;
      if (addr < g->start || addr >= g->end)
        continue;

      /* The page is gone from the file: a private zero page in its place
       * lets the access complete. mmap is async-signal-safe. */
      if (mmap ((gpointer) (addr & ~(page - 1)), (size_t) page, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0)
          == MAP_FAILED)
        break;
      __atomic_store_n (&g->faulted, TRUE, __ATOMIC_RELEASE);
      __atomic_add_fetch (&vhu_fault_guard_faults, 1, __ATOMIC_RELEASE);
      return;
    }
  pass_on (sig, info, ucontext);
}

static void
install_handler (void)
{
  static gsize installed = 0;

  if (g_once_init_enter (&installed))
    {
      struct sigaction sa;
      long page = sysconf (_SC_PAGESIZE);

      page_size = page > 0 ? (guintptr) page : 4096;
      memset (&sa, 0, sizeof sa);
      sa.sa_sigaction = on_sigbus;
      sa.sa_flags = SA_SIGINFO | SA_NODEFER;
      sigemptyset (&sa.sa_mask);
      sigaction (SIGBUS, &sa, &previous_action);
      g_once_init_leave (&installed, 1);
    }
}

/* Returns NULL when the table is full: the range is then unguarded, as it
 * would be without the guard. */
VhuFaultGuard *
vhu_fault_guard_register (gpointer addr, gsize size)
{
  install_handler ();

  for (guint i = 0; i < MAX_GUARDS; i++)
    {
      VhuFaultGuard *g = &guards[i];
      gint expected = SLOT_FREE;

      if (!__atomic_compare_exchange_n (&g->state, &expected, SLOT_FILLING, FALSE, __ATOMIC_ACQ_REL,
                                        __ATOMIC_RELAXED))
        continue;
      g->start = (guintptr) addr;
      g->end = (guintptr) addr + size;
      g->faulted = FALSE;
      __atomic_store_n (&g->state, SLOT_PUBLISHED, __ATOMIC_RELEASE);
      return g;
    }
  g_warning ("More than %u guest mappings to guard against truncation", MAX_GUARDS);
  return NULL;
}

/* Call before the range is unmapped. */
void
vhu_fault_guard_unregister (VhuFaultGuard *guard)
{
  if (guard == NULL)
    return;
  __atomic_store_n (&guard->state, SLOT_FREE, __ATOMIC_RELEASE);
}

gboolean
vhu_fault_guard_faulted (const VhuFaultGuard *guard)
{
  return guard != NULL && __atomic_load_n (&guard->faulted, __ATOMIC_ACQUIRE);
}
