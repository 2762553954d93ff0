/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * Unit tests of the guest memory table, the dirty log and the inflight
 * buffer. Regions are memfds: the test writes through its own mapping and
 * reads through the translated host pointer. Every test checks that it leaks
 * no fd (and the failure paths that they leak no mapping).
 */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>

#include "vhost-user-error.h"
#include "vhu-dirty-log.h"
#include "vhu-inflight.h"
#include "vhu-memory.h"
#include "vhu-message.h"
#include "vhu-test-util.h"

#define PAGE ((guint64) sysconf (_SC_PAGESIZE))
#define UVA_BASE G_GUINT64_CONSTANT (0x7f0000000000)

/* ---- helpers ------------------------------------------------------------ */

static gboolean
fd_is_open (int fd)
{
  return fcntl (fd, F_GETFD) >= 0;
}

/* A memfd of the given size and the test's own mapping of all of it. */
typedef struct
{
  int fd;
  guint8 *map;
  gsize size;
} TestMem;

static void
test_mem_init (TestMem *m, gsize size)
{
  m->fd = memfd_create ("test-memory", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  g_assert_cmpint (m->fd, >=, 0);
  g_assert_cmpint (ftruncate (m->fd, (off_t) size), ==, 0);
  m->size = size;
  m->map = NULL;
  if (size > 0)
    {
      m->map = mmap (NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, m->fd, 0);
      g_assert_true (m->map != MAP_FAILED);
    }
}

static void
test_mem_clear (TestMem *m)
{
  if (m->map != NULL)
    munmap (m->map, m->size);
  close (m->fd);
  m->fd = -1;
  m->map = NULL;
}

static int
dup_fd (int fd)
{
  int d = fcntl (fd, F_DUPFD_CLOEXEC, 3);

  g_assert_cmpint (d, >=, 0);
  return d;
}

static VhuMemRegionDesc
desc_make (guint64 gpa, guint64 size, guint64 uva, guint64 offset)
{
  VhuMemRegionDesc d = { .guest_addr = gpa, .size = size, .user_addr = uva, .mmap_offset = offset };
  return d;
}

/* Expects new_from_descs to fail with the given code, closing every fd. */
static void
expect_set_fails (const VhuMemRegionDesc *descs, int *fds, guint n, guint max, gint code)
{
  g_autoptr (GError) error = NULL;
  g_autofree int *copy = g_memdup2 (fds, sizeof (int) * MAX (n, 1));
  VhuMemTable *table;

  table = vhu_mem_table_new_from_descs (descs, fds, n, max, &error);
  g_assert_null (table);
  g_assert_error (error, VHOST_USER_ERROR, code);
  g_test_message ("expected error: %s", error->message);
  for (guint i = 0; i < n; i++)
    {
      g_assert_cmpint (fds[i], ==, -1);
      if (copy[i] >= 0)
        g_assert_false (fd_is_open (copy[i]));
    }
}

/* ---- SET_MEM_TABLE -------------------------------------------------------- */

static void
test_set_valid (void)
{
  guint fds0 = vhu_test_count_fds ();

  for (guint n = 1; n <= VHU_MEM_TABLE_MAX_REGIONS; n++)
    {
      g_autoptr (VhuMemTable) table = NULL;
      g_autoptr (GError) error = NULL;
      VhuMemRegionDesc descs[VHU_MEM_TABLE_MAX_REGIONS];
      int fds[VHU_MEM_TABLE_MAX_REGIONS];
      TestMem mem;

      test_mem_init (&mem, n * 2 * PAGE);
      for (guint i = 0; i < n; i++)
        {
          descs[i] = desc_make (0x100000 * (i + 1), 2 * PAGE, UVA_BASE + 0x10000 * i, i * 2 * PAGE);
          fds[i] = dup_fd (mem.fd);
          /* a marker at the first, a middle and the last byte of each region */
          mem.map[i * 2 * PAGE] = (guint8) (0x10 + i);
          mem.map[i * 2 * PAGE + 123] = (guint8) (0x40 + i);
          mem.map[i * 2 * PAGE + 2 * PAGE - 1] = (guint8) (0x80 + i);
        }

      table = vhu_mem_table_new_from_descs (descs, fds, n, VHU_MEM_TABLE_MAX_REGIONS, &error);
      g_assert_no_error (error);
      g_assert_nonnull (table);
      g_assert_cmpuint (vhu_mem_table_get_n_regions (table), ==, n);
      g_assert_cmphex (vhu_mem_table_get_guest_end (table), ==, 0x100000 * n + 2 * PAGE);
      g_assert_null (vhu_mem_table_get_region (table, n));

      for (guint i = 0; i < n; i++)
        {
          const VhuMemRegion *r = vhu_mem_table_get_region (table, i);
          guint64 len = 2 * PAGE;
          guint8 *p;

          g_assert_cmpint (fds[i], ==, -1);
          g_assert_nonnull (r);
          g_assert_cmphex (r->guest_addr, ==, descs[i].guest_addr);
          g_assert_cmphex (r->user_addr, ==, descs[i].user_addr);
          g_assert_cmphex (r->size, ==, descs[i].size);
          g_assert_true (vhu_mem_table_lookup_gpa (table, descs[i].guest_addr + 5) == r);

          p = vhu_mem_table_gpa_to_host (table, descs[i].guest_addr, &len);
          g_assert_nonnull (p);
          g_assert_cmpuint (len, ==, 2 * PAGE);
          g_assert_cmpuint (p[0], ==, 0x10 + i);
          g_assert_cmpuint (p[123], ==, 0x40 + i);
          g_assert_cmpuint (p[2 * PAGE - 1], ==, 0x80 + i);

          /* and the other way: a write through the translation is seen by the test */
          p[7] = 0xee;
          g_assert_cmpuint (mem.map[i * 2 * PAGE + 7], ==, 0xee);

          p = vhu_mem_table_uva_to_host (table, descs[i].user_addr + 123, 1);
          g_assert_nonnull (p);
          g_assert_cmpuint (*p, ==, 0x40 + i);
        }
      test_mem_clear (&mem);
    }
  g_assert_cmpuint (vhu_test_count_fds (), ==, fds0);
}

static void
test_set_unsorted (void)
{
  guint fds0 = vhu_test_count_fds ();
  g_autoptr (VhuMemTable) table = NULL;
  g_autoptr (GError) error = NULL;
  VhuMemRegionDesc descs[4];
  int fds[4];
  TestMem mem;
  /* guest order: 2, 0, 3, 1; user order differs again */
  const guint64 gpas[4] = { 0x300000, 0x100000, 0x400000, 0x200000 };
  const guint64 uvas[4] = {
    UVA_BASE, UVA_BASE + 0x300000, UVA_BASE + 0x100000, UVA_BASE + 0x200000,
  };

  test_mem_init (&mem, 4 * PAGE);
  for (guint i = 0; i < 4; i++)
    {
      descs[i] = desc_make (gpas[i], PAGE, uvas[i], i * PAGE);
      fds[i] = dup_fd (mem.fd);
      mem.map[i * PAGE + 1] = (guint8) (0xa0 + i);
    }
  table = vhu_mem_table_new_from_descs (descs, fds, 4, 8, &error);
  g_assert_no_error (error);

  for (guint i = 0; i < 4; i++)
    {
      const VhuMemRegion *r = vhu_mem_table_get_region (table, i);
      guint8 *p;

      g_assert_cmphex (r->guest_addr, ==, 0x100000 * (i + 1));
      if (i > 0)
        g_assert_cmphex (vhu_mem_table_get_region (table, i - 1)->guest_addr, <, r->guest_addr);

      p = vhu_mem_table_gpa_to_host (table, gpas[i] + 1, NULL);
      g_assert_nonnull (p);
      g_assert_cmpuint (*p, ==, 0xa0 + i);
      p = vhu_mem_table_uva_to_host (table, uvas[i] + 1, PAGE - 1);
      g_assert_nonnull (p);
      g_assert_cmpuint (*p, ==, 0xa0 + i);
    }
  g_assert_cmphex (vhu_mem_table_get_guest_end (table), ==, 0x400000 + PAGE);

  test_mem_clear (&mem);
  g_clear_pointer (&table, vhu_mem_table_unref);
  g_assert_cmpuint (vhu_test_count_fds (), ==, fds0);
}

static void
test_set_count (void)
{
  guint fds0 = vhu_test_count_fds ();
  g_autoptr (GError) error = NULL;
  VhuMemRegionDesc descs[3];
  int fds[3];
  TestMem mem;

  /* no region */
  g_assert_null (vhu_mem_table_new_from_descs (NULL, NULL, 0, 8, &error));
  g_assert_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID);
  g_clear_error (&error);

  /* more than max */
  test_mem_init (&mem, 3 * PAGE);
  for (guint i = 0; i < 3; i++)
    {
      descs[i] = desc_make (i * PAGE, PAGE, UVA_BASE + i * PAGE, i * PAGE);
      fds[i] = dup_fd (mem.fd);
    }
  expect_set_fails (descs, fds, 3, 2, VHOST_USER_ERROR_INVALID);

  test_mem_clear (&mem);
  g_assert_cmpuint (vhu_test_count_fds (), ==, fds0);
}

/* Two good regions plus a third one, which must make the whole table fail. */
static void
check_bad_third (VhuMemRegionDesc bad, gint code)
{
  guint fds0 = vhu_test_count_fds ();
  guint maps0 = vhu_test_count_memfd_mappings ();
  VhuMemRegionDesc descs[3];
  int fds[3];
  TestMem mem;

  test_mem_init (&mem, 4 * PAGE);
  descs[0] = desc_make (0, PAGE, UVA_BASE, 0);
  descs[1] = desc_make (PAGE, PAGE, UVA_BASE + PAGE, PAGE);
  descs[2] = bad;
  for (guint i = 0; i < 3; i++)
    fds[i] = dup_fd (mem.fd);
  expect_set_fails (descs, fds, 3, 8, code);
  test_mem_clear (&mem);

  g_assert_cmpuint (vhu_test_count_fds (), ==, fds0);
  g_assert_cmpuint (vhu_test_count_memfd_mappings (), ==, maps0);
}

static void
test_set_size_zero (void)
{
  check_bad_third (desc_make (0x100000, 0, UVA_BASE + 0x100000, 0), VHOST_USER_ERROR_INVALID);
}

static void
test_set_overflow (void)
{
  /* guest_addr + size */
  check_bad_third (desc_make (G_MAXUINT64 - PAGE + 1, PAGE, UVA_BASE + 0x100000, 0),
                   VHOST_USER_ERROR_INVALID);
  check_bad_third (desc_make (0x100000, G_MAXUINT64, UVA_BASE + 0x100000, 0),
                   VHOST_USER_ERROR_INVALID);
  /* user_addr + size */
  check_bad_third (desc_make (0x100000, PAGE, G_MAXUINT64 - 10, 0), VHOST_USER_ERROR_INVALID);
  /* mmap_offset + size */
  check_bad_third (desc_make (0x100000, PAGE, UVA_BASE + 0x100000, G_MAXUINT64 - PAGE + 2),
                   VHOST_USER_ERROR_INVALID);
  /* no single sum overflows, but rounding the mapping up to pages does */
  check_bad_third (desc_make (0, G_MAXUINT64 - 0x800, 0x800, 0x800), VHOST_USER_ERROR_INVALID);
  check_bad_third (desc_make (0, G_MAXUINT64 - PAGE, PAGE, 0), VHOST_USER_ERROR_INVALID);
  /* beyond any file offset */
  check_bad_third (desc_make (0x100000, PAGE, UVA_BASE + 0x100000, G_MAXUINT64 / 2 + 1),
                   VHOST_USER_ERROR_INVALID);
}

static void
test_set_overlap_gpa (void)
{
  /* overlaps region 1's last byte */
  check_bad_third (desc_make (2 * PAGE - 1, PAGE, UVA_BASE + 0x100000, 2 * PAGE),
                   VHOST_USER_ERROR_INVALID);
  /* contains region 0 */
  check_bad_third (desc_make (0, 4 * PAGE, UVA_BASE + 0x100000, 0), VHOST_USER_ERROR_INVALID);
  /* inside region 0 */
  check_bad_third (desc_make (16, 16, UVA_BASE + 0x100000, 0), VHOST_USER_ERROR_INVALID);
}

static void
test_set_overlap_uva (void)
{
  check_bad_third (desc_make (0x100000, PAGE, UVA_BASE + PAGE + 1, 2 * PAGE),
                   VHOST_USER_ERROR_INVALID);
  check_bad_third (desc_make (0x100000, 16 * PAGE, UVA_BASE - PAGE, 0), VHOST_USER_ERROR_INVALID);
}

static void
test_set_duplicate (void)
{
  check_bad_third (desc_make (PAGE, PAGE, UVA_BASE + PAGE, PAGE), VHOST_USER_ERROR_INVALID);
  check_bad_third (desc_make (0, PAGE, UVA_BASE, 0), VHOST_USER_ERROR_INVALID);
}

static void
test_set_fd_too_small (void)
{
  /* the memfd has 4 pages */
  check_bad_third (desc_make (0x100000, PAGE, UVA_BASE + 0x100000, 3 * PAGE + 1),
                   VHOST_USER_ERROR_MEMORY);
  check_bad_third (desc_make (0x100000, 5 * PAGE, UVA_BASE + 0x100000, 0),
                   VHOST_USER_ERROR_MEMORY);
  check_bad_third (desc_make (0x100000, PAGE, UVA_BASE + 0x100000, 100 * PAGE),
                   VHOST_USER_ERROR_MEMORY);
}

static void
test_set_bad_fd (void)
{
  guint fds0 = vhu_test_count_fds ();
  guint maps0 = vhu_test_count_memfd_mappings ();
  VhuMemRegionDesc descs[2];
  int fds[2];
  int closed;
  TestMem mem;

  test_mem_init (&mem, 2 * PAGE);
  descs[0] = desc_make (0, PAGE, UVA_BASE, 0);
  descs[1] = desc_make (PAGE, PAGE, UVA_BASE + PAGE, PAGE);

  fds[0] = dup_fd (mem.fd);
  fds[1] = -1;
  expect_set_fails (descs, fds, 2, 8, VHOST_USER_ERROR_MEMORY);

  fds[0] = dup_fd (mem.fd);
  closed = dup_fd (mem.fd);
  close (closed);
  fds[1] = closed;
  g_assert_cmpint (fds[0], !=, closed);
  expect_set_fails (descs, fds, 2, 8, VHOST_USER_ERROR_MEMORY);

  /* the same fd number twice */
  fds[0] = dup_fd (mem.fd);
  fds[1] = fds[0];
  expect_set_fails (descs, fds, 2, 8, VHOST_USER_ERROR_INVALID);

  test_mem_clear (&mem);
  g_assert_cmpuint (vhu_test_count_fds (), ==, fds0);
  g_assert_cmpuint (vhu_test_count_memfd_mappings (), ==, maps0);
}

static void
test_set_unaligned_offset (void)
{
  guint fds0 = vhu_test_count_fds ();
  g_autoptr (VhuMemTable) table = NULL;
  g_autoptr (GError) error = NULL;
  VhuMemRegionDesc descs[2];
  int fds[2];
  TestMem mem;
  guint8 *p;
  guint64 len;

  test_mem_init (&mem, 4 * PAGE);
  /* region 0: one page starting 0x100 into page 1; region 1: 0x10 into page 0,
   * size crossing into page 1 */
  descs[0] = desc_make (0x200000, PAGE, UVA_BASE, PAGE + 0x100);
  descs[1] = desc_make (0x100000, PAGE, UVA_BASE + 0x100000, 0x10);
  for (guint i = 0; i < 2; i++)
    fds[i] = dup_fd (mem.fd);
  for (guint i = 0; i < 4 * PAGE; i++)
    mem.map[i] = (guint8) (i * 7 + i / 251);

  table = vhu_mem_table_new_from_descs (descs, fds, 2, 8, &error);
  g_assert_no_error (error);

  for (guint r = 0; r < 2; r++)
    for (guint64 off = 0; off < PAGE; off++)
      {
        guint64 file_off = descs[r].mmap_offset + off;

        len = PAGE;
        p = vhu_mem_table_gpa_to_host (table, descs[r].guest_addr + off, &len);
        g_assert_nonnull (p);
        g_assert_cmpuint (len, ==, PAGE - off);
        g_assert_cmpuint (*p, ==, (guint8) (file_off * 7 + file_off / 251));
      }

  test_mem_clear (&mem);
  g_clear_pointer (&table, vhu_mem_table_unref);
  g_assert_cmpuint (vhu_test_count_fds (), ==, fds0);
}

/* The third mmap fails after every check passed: nothing stays mapped or open. */
static void
test_set_commit_on_success (void)
{
  guint fds0 = vhu_test_count_fds ();
  guint maps0 = vhu_test_count_memfd_mappings ();
  guint maps1;
  VhuMemRegionDesc descs[3];
  int fds[3];
  g_autofree char *path = NULL;
  TestMem mem;

  test_mem_init (&mem, 3 * PAGE);
  maps1 = vhu_test_count_memfd_mappings ();
  g_assert_cmpuint (maps1, >, maps0);
  for (guint i = 0; i < 3; i++)
    descs[i] = desc_make (i * PAGE, PAGE, UVA_BASE + i * PAGE, i * PAGE);

  /* a read-only fd of the same memfd: fstat and size fine, mmap(PROT_WRITE) EACCES */
  path = g_strdup_printf ("/proc/self/fd/%d", mem.fd);
  fds[0] = dup_fd (mem.fd);
  fds[1] = dup_fd (mem.fd);
  fds[2] = open (path, O_RDONLY | O_CLOEXEC);
  g_assert_cmpint (fds[2], >=, 0);
  expect_set_fails (descs, fds, 3, 8, VHOST_USER_ERROR_MEMORY);
  g_assert_cmpuint (vhu_test_count_memfd_mappings (), ==, maps1);

  /* a pipe: not a regular file, so no size to check, but not mappable */
  {
    int p[2];

    g_assert_cmpint (pipe2 (p, O_CLOEXEC), ==, 0);
    close (p[1]);
    fds[0] = dup_fd (mem.fd);
    fds[1] = dup_fd (mem.fd);
    fds[2] = p[0];
    expect_set_fails (descs, fds, 3, 8, VHOST_USER_ERROR_MEMORY);
  }
  g_assert_cmpuint (vhu_test_count_memfd_mappings (), ==, maps1);

  test_mem_clear (&mem);
  g_assert_cmpuint (vhu_test_count_fds (), ==, fds0);
  g_assert_cmpuint (vhu_test_count_memfd_mappings (), ==, maps0);
}

/* A region is unmapped and its fd closed once the last table holding it goes. */
static void
test_set_release (void)
{
  guint fds0 = vhu_test_count_fds ();
  guint maps0 = vhu_test_count_memfd_mappings ();
  g_autoptr (GError) error = NULL;
  VhuMemTable *table;
  VhuMemTable *ref;
  VhuMemRegionDesc desc = desc_make (0, PAGE, UVA_BASE, 0);
  TestMem mem;
  int fd;

  test_mem_init (&mem, PAGE);
  fd = dup_fd (mem.fd);
  test_mem_clear (&mem);
  g_assert_cmpuint (vhu_test_count_fds (), ==, fds0 + 1);

  table = vhu_mem_table_new_from_descs (&desc, &fd, 1, 8, &error);
  g_assert_no_error (error);
  g_assert_cmpint (fd, ==, -1);
  g_assert_cmpuint (vhu_test_count_memfd_mappings (), >, maps0);

  ref = vhu_mem_table_ref (table);
  vhu_mem_table_unref (table);
  g_assert_nonnull (vhu_mem_table_gpa_to_host (ref, 0, NULL));
  g_assert_cmpuint (vhu_test_count_fds (), ==, fds0 + 1);
  vhu_mem_table_unref (ref);

  g_assert_cmpuint (vhu_test_count_fds (), ==, fds0);
  g_assert_cmpuint (vhu_test_count_memfd_mappings (), ==, maps0);
}

static void
test_empty (void)
{
  guint fds0 = vhu_test_count_fds ();
  VhuMemTable *table = vhu_mem_table_new_empty ();
  struct iovec iov[2];
  guint64 len = 10;

  g_assert_cmpuint (vhu_mem_table_get_n_regions (table), ==, 0);
  g_assert_cmphex (vhu_mem_table_get_guest_end (table), ==, 0);
  g_assert_null (vhu_mem_table_get_region (table, 0));
  g_assert_null (vhu_mem_table_lookup_gpa (table, 0));
  g_assert_null (vhu_mem_table_gpa_to_host (table, 0, &len));
  g_assert_cmpuint (len, ==, 0);
  g_assert_null (vhu_mem_table_uva_to_host (table, 0, 1));
  g_assert_cmpint (vhu_mem_table_gpa_to_iov (table, 0, 1, iov, 2), ==, -1);
  g_assert_cmpint (vhu_mem_table_gpa_to_iov (table, 0, 0, iov, 2), ==, 0);
  vhu_mem_table_unref (table);
  g_assert_cmpuint (vhu_test_count_fds (), ==, fds0);
}

/* ---- ADD_MEM_REG / REM_MEM_REG -------------------------------------------- */

static void
test_add_max (void)
{
  guint fds0 = vhu_test_count_fds ();
  guint maps0 = vhu_test_count_memfd_mappings ();
  g_autoptr (GError) error = NULL;
  VhuMemTable *table = vhu_mem_table_new_empty ();
  VhuMemTable *next;
  VhuMemRegionDesc desc;
  TestMem mem;
  int fd;

  test_mem_init (&mem, (VHU_MAX_MEM_SLOTS + 1) * PAGE);
  for (guint i = 0; i < VHU_MAX_MEM_SLOTS; i++)
    {
      /* added in a scrambled guest order */
      guint slot = (i * 7) % VHU_MAX_MEM_SLOTS;

      desc = desc_make (0x100000 + slot * PAGE, PAGE, UVA_BASE + slot * PAGE, slot * PAGE);
      mem.map[slot * PAGE + 9] = (guint8) slot;
      next = vhu_mem_table_add (table, &desc, dup_fd (mem.fd), VHU_MAX_MEM_SLOTS, &error);
      g_assert_no_error (error);
      g_assert_nonnull (next);
      g_assert_cmpuint (vhu_mem_table_get_n_regions (next), ==, i + 1);
      g_assert_cmpuint (vhu_mem_table_get_n_regions (table), ==, i);
      vhu_mem_table_unref (table);
      table = next;
    }

  /* the 510th */
  desc = desc_make (0x100000 + VHU_MAX_MEM_SLOTS * PAGE, PAGE,
                    UVA_BASE + VHU_MAX_MEM_SLOTS * PAGE, VHU_MAX_MEM_SLOTS * PAGE);
  fd = dup_fd (mem.fd);
  g_assert_null (vhu_mem_table_add (table, &desc, fd, VHU_MAX_MEM_SLOTS, &error));
  g_assert_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID);
  g_assert_false (fd_is_open (fd));
  g_clear_error (&error);

  for (guint i = 0; i < VHU_MAX_MEM_SLOTS; i++)
    {
      const VhuMemRegion *r = vhu_mem_table_get_region (table, i);
      guint8 *p;

      g_assert_cmphex (r->guest_addr, ==, 0x100000 + i * PAGE);
      p = vhu_mem_table_gpa_to_host (table, 0x100000 + i * PAGE + 9, NULL);
      g_assert_nonnull (p);
      g_assert_cmpuint (*p, ==, (guint8) i);
    }
  g_assert_cmpuint (vhu_test_count_fds (), ==, fds0 + 1 + VHU_MAX_MEM_SLOTS);

  vhu_mem_table_unref (table);
  test_mem_clear (&mem);
  g_assert_cmpuint (vhu_test_count_fds (), ==, fds0);
  g_assert_cmpuint (vhu_test_count_memfd_mappings (), ==, maps0);
}

static void
test_add_invalid (void)
{
  guint fds0 = vhu_test_count_fds ();
  guint maps0;
  g_autoptr (GError) error = NULL;
  g_autoptr (VhuMemTable) table = NULL;
  VhuMemRegionDesc descs[2];
  VhuMemRegionDesc desc;
  int fds[2];
  int fd;
  TestMem mem;
  struct
  {
    VhuMemRegionDesc desc;
    gint code;
  } bad[] = {
    { desc_make (0x100000 + PAGE - 1, PAGE, UVA_BASE + 0x100000, 0), VHOST_USER_ERROR_INVALID },
    { desc_make (0x100000, PAGE, UVA_BASE + 0x100000, 0), VHOST_USER_ERROR_INVALID },
    { desc_make (0x300000, PAGE, UVA_BASE + PAGE - 1, 0), VHOST_USER_ERROR_INVALID },
    { desc_make (0x300000, 0, UVA_BASE + 0x300000, 0), VHOST_USER_ERROR_INVALID },
    { desc_make (G_MAXUINT64, 2, UVA_BASE + 0x300000, 0), VHOST_USER_ERROR_INVALID },
    { desc_make (0x300000, PAGE, UVA_BASE + 0x300000, 2 * PAGE), VHOST_USER_ERROR_MEMORY },
  };

  test_mem_init (&mem, 2 * PAGE);
  descs[0] = desc_make (0, PAGE, UVA_BASE, 0);
  descs[1] = desc_make (0x100000, PAGE, UVA_BASE + 0x100000, PAGE);
  fds[0] = dup_fd (mem.fd);
  fds[1] = dup_fd (mem.fd);
  table = vhu_mem_table_new_from_descs (descs, fds, 2, 8, &error);
  g_assert_no_error (error);
  maps0 = vhu_test_count_memfd_mappings ();

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      fd = dup_fd (mem.fd);
      g_assert_null (vhu_mem_table_add (table, &bad[i].desc, fd, 8, &error));
      g_assert_error (error, VHOST_USER_ERROR, bad[i].code);
      g_test_message ("expected error: %s", error->message);
      g_clear_error (&error);
      g_assert_false (fd_is_open (fd));
      g_assert_cmpuint (vhu_test_count_memfd_mappings (), ==, maps0);
      g_assert_cmpuint (vhu_mem_table_get_n_regions (table), ==, 2);
    }

  /* full (max 2), and a bad fd */
  desc = desc_make (0x300000, PAGE, UVA_BASE + 0x300000, 0);
  fd = dup_fd (mem.fd);
  g_assert_null (vhu_mem_table_add (table, &desc, fd, 2, &error));
  g_assert_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID);
  g_clear_error (&error);
  g_assert_false (fd_is_open (fd));
  g_assert_null (vhu_mem_table_add (table, &desc, -1, 8, &error));
  g_assert_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_MEMORY);
  g_clear_error (&error);

  test_mem_clear (&mem);
  g_clear_pointer (&table, vhu_mem_table_unref);
  g_assert_cmpuint (vhu_test_count_fds (), ==, fds0);
}

static void
test_remove (void)
{
  guint fds0 = vhu_test_count_fds ();
  guint maps0 = vhu_test_count_memfd_mappings ();
  g_autoptr (GError) error = NULL;
  VhuMemTable *table;
  VhuMemTable *next;
  VhuMemRegionDesc descs[3];
  VhuMemRegionDesc desc;
  int fds[3];
  TestMem mem;

  test_mem_init (&mem, 3 * PAGE);
  for (guint i = 0; i < 3; i++)
    {
      descs[i] = desc_make (i * PAGE, PAGE, UVA_BASE + i * 0x10000, i * PAGE);
      fds[i] = dup_fd (mem.fd);
    }
  table = vhu_mem_table_new_from_descs (descs, fds, 3, 8, &error);
  g_assert_no_error (error);

  /* unknown: each identifying field differs */
  desc = descs[1];
  desc.guest_addr += 1;
  g_assert_null (vhu_mem_table_remove (table, &desc, &error));
  g_assert_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID);
  g_clear_error (&error);
  desc = descs[1];
  desc.user_addr += PAGE;
  g_assert_null (vhu_mem_table_remove (table, &desc, &error));
  g_assert_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID);
  g_clear_error (&error);
  desc = descs[1];
  desc.size = 1;
  g_assert_null (vhu_mem_table_remove (table, &desc, &error));
  g_assert_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID);
  g_clear_error (&error);
  desc = desc_make (0x900000, PAGE, UVA_BASE, 0);
  g_assert_null (vhu_mem_table_remove (table, &desc, &error));
  g_assert_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID);
  g_clear_error (&error);

  /* known; mmap_offset is ignored */
  desc = descs[1];
  desc.mmap_offset = 0x12345;
  next = vhu_mem_table_remove (table, &desc, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (vhu_mem_table_get_n_regions (next), ==, 2);
  g_assert_null (vhu_mem_table_lookup_gpa (next, PAGE));
  g_assert_nonnull (vhu_mem_table_lookup_gpa (next, 0));
  g_assert_nonnull (vhu_mem_table_lookup_gpa (next, 2 * PAGE));
  g_assert_cmpuint (vhu_mem_table_get_n_regions (table), ==, 3);
  vhu_mem_table_unref (table);
  table = next;

  /* removing it again fails */
  g_assert_null (vhu_mem_table_remove (table, &desc, &error));
  g_assert_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID);
  g_clear_error (&error);
  g_assert_cmpuint (vhu_test_count_fds (), ==, fds0 + 1 + 2);

  /* down to empty */
  for (guint i = 0; i < 3; i += 2)
    {
      next = vhu_mem_table_remove (table, &descs[i], &error);
      g_assert_no_error (error);
      vhu_mem_table_unref (table);
      table = next;
    }
  g_assert_cmpuint (vhu_mem_table_get_n_regions (table), ==, 0);
  g_assert_cmphex (vhu_mem_table_get_guest_end (table), ==, 0);
  vhu_mem_table_unref (table);

  test_mem_clear (&mem);
  g_assert_cmpuint (vhu_test_count_fds (), ==, fds0);
  g_assert_cmpuint (vhu_test_count_memfd_mappings (), ==, maps0);
}

/* QEMU 7.2 sends each region once per vhost device (a multi-queue net
 * device is several): the same region of the same file again is counted,
 * not refused, and stays until removed as often. */
static void
test_add_repeated (void)
{
  guint fds0 = vhu_test_count_fds ();
  guint maps0 = vhu_test_count_memfd_mappings ();
  g_autoptr (GError) error = NULL;
  VhuMemRegionDesc desc = desc_make (0x100000, PAGE, UVA_BASE, 0);
  VhuMemTable *table = vhu_mem_table_new_empty ();
  VhuMemTable *next;
  TestMem mem, other;
  int fd;

  test_mem_init (&mem, 2 * PAGE);
  test_mem_init (&other, 2 * PAGE);

  for (guint i = 0; i < 2; i++)
    {
      fd = dup_fd (mem.fd);
      next = vhu_mem_table_add (table, &desc, fd, 8, &error);
      g_assert_no_error (error);
      vhu_mem_table_unref (table);
      table = next;
      g_assert_cmpuint (vhu_mem_table_get_n_regions (table), ==, 1);
    }
  /* One mapping and one fd are kept. */
  g_assert_cmpuint (vhu_test_count_memfd_mappings (), ==, maps0 + 2 + 1);
  g_assert_cmpuint (vhu_test_count_fds (), ==, fds0 + 2 + 1);

  /* The same addresses in another file are an overlap. */
  fd = dup_fd (other.fd);
  g_assert_null (vhu_mem_table_add (table, &desc, fd, 8, &error));
  g_assert_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID);
  g_clear_error (&error);
  g_assert_false (fd_is_open (fd));

  /* Removed once: still there; twice: gone; a third time: unknown. */
  next = vhu_mem_table_remove (table, &desc, &error);
  g_assert_no_error (error);
  vhu_mem_table_unref (table);
  table = next;
  g_assert_nonnull (vhu_mem_table_lookup_gpa (table, 0x100000));
  next = vhu_mem_table_remove (table, &desc, &error);
  g_assert_no_error (error);
  vhu_mem_table_unref (table);
  table = next;
  g_assert_null (vhu_mem_table_lookup_gpa (table, 0x100000));
  g_assert_null (vhu_mem_table_remove (table, &desc, &error));
  g_assert_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID);
  g_clear_error (&error);
  vhu_mem_table_unref (table);

  test_mem_clear (&mem);
  test_mem_clear (&other);
  g_assert_cmpuint (vhu_test_count_fds (), ==, fds0);
  g_assert_cmpuint (vhu_test_count_memfd_mappings (), ==, maps0);
}

/* An old snapshot stays fully usable after add/remove, until it is dropped. */
static void
test_rcu (void)
{
  guint fds0 = vhu_test_count_fds ();
  guint maps0 = vhu_test_count_memfd_mappings ();
  g_autoptr (GError) error = NULL;
  VhuMemTable *v1;
  VhuMemTable *v2;
  VhuMemTable *v3;
  VhuMemRegionDesc d0 = desc_make (0, PAGE, UVA_BASE, 0);
  VhuMemRegionDesc d1 = desc_make (PAGE, PAGE, UVA_BASE + PAGE, PAGE);
  TestMem mem;
  int fd;
  guint8 *p0;
  guint8 *p1;

  test_mem_init (&mem, 2 * PAGE);
  mem.map[5] = 0x55;
  mem.map[PAGE + 5] = 0x66;

  fd = dup_fd (mem.fd);
  v1 = vhu_mem_table_new_from_descs (&d0, &fd, 1, 8, &error);
  g_assert_no_error (error);
  p0 = vhu_mem_table_gpa_to_host (v1, 5, NULL);

  v2 = vhu_mem_table_add (v1, &d1, dup_fd (mem.fd), 8, &error);
  g_assert_no_error (error);
  /* the old region is shared, not remapped */
  g_assert_true (vhu_mem_table_gpa_to_host (v2, 5, NULL) == p0);
  g_assert_true (vhu_mem_table_lookup_gpa (v2, 0) == vhu_mem_table_lookup_gpa (v1, 0));
  g_assert_null (vhu_mem_table_lookup_gpa (v1, PAGE));
  p1 = vhu_mem_table_gpa_to_host (v2, PAGE + 5, NULL);
  g_assert_cmpuint (*p1, ==, 0x66);

  v3 = vhu_mem_table_remove (v2, &d0, &error);
  g_assert_no_error (error);
  g_assert_null (vhu_mem_table_lookup_gpa (v3, 0));

  /* drop the newer snapshots that held region 0: v1 still reads it */
  vhu_mem_table_unref (v2);
  g_assert_cmpuint (*p0, ==, 0x55);
  mem.map[5] = 0x56;
  g_assert_cmpuint (*(guint8 *) vhu_mem_table_gpa_to_host (v1, 5, NULL), ==, 0x56);
  g_assert_cmpuint (vhu_test_count_fds (), ==, fds0 + 1 + 2);

  /* and v3 still reads region 1 */
  vhu_mem_table_unref (v1);
  g_assert_cmpuint (vhu_test_count_fds (), ==, fds0 + 1 + 1);
  g_assert_cmpuint (*(guint8 *) vhu_mem_table_gpa_to_host (v3, PAGE + 5, NULL), ==, 0x66);
  vhu_mem_table_unref (v3);

  test_mem_clear (&mem);
  g_assert_cmpuint (vhu_test_count_fds (), ==, fds0);
  g_assert_cmpuint (vhu_test_count_memfd_mappings (), ==, maps0);
}

/* ---- translation ---------------------------------------------------------- */

/* Regions 0 and 1 adjacent in guest space (2 pages each), a hole, region 2. */
static VhuMemTable *
make_iov_table (TestMem *mem)
{
  g_autoptr (GError) error = NULL;
  VhuMemRegionDesc descs[3];
  int fds[3];
  VhuMemTable *table;

  test_mem_init (mem, 6 * PAGE);
  for (guint i = 0; i < 6 * PAGE; i++)
    mem->map[i] = (guint8) (i / 13);
  /* region 1 takes the file's first pages, region 0 the next: not contiguous on the host */
  descs[0] = desc_make (0x10000, 2 * PAGE, UVA_BASE, 2 * PAGE);
  descs[1] = desc_make (0x10000 + 2 * PAGE, 2 * PAGE, UVA_BASE + 2 * PAGE, 0);
  descs[2] = desc_make (0x10000 + 5 * PAGE, PAGE, UVA_BASE + 0x100000, 4 * PAGE);
  for (guint i = 0; i < 3; i++)
    fds[i] = dup_fd (mem->fd);
  table = vhu_mem_table_new_from_descs (descs, fds, 3, 8, &error);
  g_assert_no_error (error);
  return table;
}

static void
test_iov (void)
{
  guint fds0 = vhu_test_count_fds ();
  g_autoptr (VhuMemTable) table = NULL;
  struct iovec iov[4];
  TestMem mem;
  guint64 start = 0x10000 + 2 * PAGE - 100;

  table = make_iov_table (&mem);

  /* inside one region */
  g_assert_cmpint (vhu_mem_table_gpa_to_iov (table, 0x10000 + 10, 100, iov, 4), ==, 1);
  g_assert_cmpuint (iov[0].iov_len, ==, 100);
  g_assert_cmpuint (((guint8 *) iov[0].iov_base)[0], ==, (guint8) ((2 * PAGE + 10) / 13));

  /* across regions 0 and 1: two iovecs, 100 + 200 */
  g_assert_cmpint (vhu_mem_table_gpa_to_iov (table, start, 300, iov, 4), ==, 2);
  g_assert_cmpuint (iov[0].iov_len, ==, 100);
  g_assert_cmpuint (iov[1].iov_len, ==, 200);
  for (guint i = 0; i < 100; i++)
    g_assert_cmpuint (((guint8 *) iov[0].iov_base)[i], ==, (guint8) ((4 * PAGE - 100 + i) / 13));
  for (guint i = 0; i < 200; i++)
    g_assert_cmpuint (((guint8 *) iov[1].iov_base)[i], ==, (guint8) (i / 13));

  /* exactly the two whole regions */
  g_assert_cmpint (vhu_mem_table_gpa_to_iov (table, 0x10000, 4 * PAGE, iov, 2), ==, 2);
  g_assert_cmpuint (iov[0].iov_len, ==, 2 * PAGE);
  g_assert_cmpuint (iov[1].iov_len, ==, 2 * PAGE);

  /* max_iov too small */
  g_assert_cmpint (vhu_mem_table_gpa_to_iov (table, start, 300, iov, 1), ==, -1);
  g_assert_cmpint (vhu_mem_table_gpa_to_iov (table, start, 1, NULL, 0), ==, -1);

  /* running into the hole after region 1 */
  g_assert_cmpint (vhu_mem_table_gpa_to_iov (table, start, 2 * PAGE + 101, iov, 4), ==, -1);
  g_assert_cmpint (vhu_mem_table_gpa_to_iov (table, start, 2 * PAGE + 100, iov, 4), ==, 2);
  /* starting in the hole, or before everything */
  g_assert_cmpint (vhu_mem_table_gpa_to_iov (table, 0x10000 + 4 * PAGE, 1, iov, 4), ==, -1);
  g_assert_cmpint (vhu_mem_table_gpa_to_iov (table, 0, 1, iov, 4), ==, -1);
  /* the last region and beyond it */
  g_assert_cmpint (vhu_mem_table_gpa_to_iov (table, 0x10000 + 5 * PAGE, PAGE, iov, 4), ==, 1);
  g_assert_cmpint (vhu_mem_table_gpa_to_iov (table, 0x10000 + 5 * PAGE, PAGE + 1, iov, 4), ==, -1);

  /* len 0, len overflowing */
  g_assert_cmpint (vhu_mem_table_gpa_to_iov (table, start, 0, iov, 4), ==, 0);
  g_assert_cmpint (vhu_mem_table_gpa_to_iov (table, start, G_MAXUINT64, iov, 4), ==, -1);
  g_assert_cmpint (vhu_mem_table_gpa_to_iov (table, G_MAXUINT64, 2, iov, 4), ==, -1);

  test_mem_clear (&mem);
  g_clear_pointer (&table, vhu_mem_table_unref);
  g_assert_cmpuint (vhu_test_count_fds (), ==, fds0);
}

static void
test_gpa_to_host (void)
{
  guint fds0 = vhu_test_count_fds ();
  g_autoptr (VhuMemTable) table = NULL;
  TestMem mem;
  guint64 len;
  guint8 *p;

  table = make_iov_table (&mem);

  len = 1000;
  p = vhu_mem_table_gpa_to_host (table, 0x10000 + 2 * PAGE - 10, &len);
  g_assert_nonnull (p);
  g_assert_cmpuint (len, ==, 10);
  g_assert_cmpuint (*p, ==, (guint8) ((4 * PAGE - 10) / 13));

  len = 5;
  p = vhu_mem_table_gpa_to_host (table, 0x10000, &len);
  g_assert_nonnull (p);
  g_assert_cmpuint (len, ==, 5);

  len = 5;
  g_assert_null (vhu_mem_table_gpa_to_host (table, 0x10000 + 4 * PAGE, &len));
  g_assert_cmpuint (len, ==, 0);
  len = 5;
  g_assert_null (vhu_mem_table_gpa_to_host (table, G_MAXUINT64, &len));
  g_assert_cmpuint (len, ==, 0);

  test_mem_clear (&mem);
  g_clear_pointer (&table, vhu_mem_table_unref);
  g_assert_cmpuint (vhu_test_count_fds (), ==, fds0);
}

static void
test_uva (void)
{
  guint fds0 = vhu_test_count_fds ();
  g_autoptr (VhuMemTable) table = NULL;
  TestMem mem;
  guint8 *p;

  table = make_iov_table (&mem);

  /* inside */
  p = vhu_mem_table_uva_to_host (table, UVA_BASE + 20, 2 * PAGE - 20);
  g_assert_nonnull (p);
  g_assert_cmpuint (*p, ==, (guint8) ((2 * PAGE + 20) / 13));
  p = vhu_mem_table_uva_to_host (table, UVA_BASE + 0x100000, PAGE);
  g_assert_nonnull (p);
  g_assert_cmpuint (*p, ==, (guint8) ((4 * PAGE) / 13));

  /* straddling two regions adjacent in user space: refused */
  g_assert_null (vhu_mem_table_uva_to_host (table, UVA_BASE + 20, 2 * PAGE - 19));
  g_assert_null (vhu_mem_table_uva_to_host (table, UVA_BASE + 2 * PAGE - 1, 2));
  /* running past the end, before, in a hole */
  g_assert_null (vhu_mem_table_uva_to_host (table, UVA_BASE + 0x100000, PAGE + 1));
  g_assert_null (vhu_mem_table_uva_to_host (table, UVA_BASE - 1, 1));
  g_assert_null (vhu_mem_table_uva_to_host (table, UVA_BASE + 4 * PAGE, 1));
  /* len 0, overflow */
  g_assert_null (vhu_mem_table_uva_to_host (table, UVA_BASE, 0));
  g_assert_null (vhu_mem_table_uva_to_host (table, UVA_BASE, G_MAXUINT64));
  g_assert_null (vhu_mem_table_uva_to_host (table, G_MAXUINT64, 1));

  test_mem_clear (&mem);
  g_clear_pointer (&table, vhu_mem_table_unref);
  g_assert_cmpuint (vhu_test_count_fds (), ==, fds0);
}

/* 509 regions of 1 to 3 pages, alternately adjacent and separated by a hole;
 * user addresses in the reverse order. Every boundary is checked. */
static void
test_lookup_509 (void)
{
  guint fds0 = vhu_test_count_fds ();
  g_autoptr (GError) error = NULL;
  g_autoptr (VhuMemTable) table = NULL;
  g_autofree VhuMemRegionDesc *descs = g_new0 (VhuMemRegionDesc, VHU_MAX_MEM_SLOTS);
  g_autofree int *fds = g_new0 (int, VHU_MAX_MEM_SLOTS);
  const guint n = VHU_MAX_MEM_SLOTS;
  guint64 gpa = 0x100000;
  guint64 file_off = 0;
  TestMem mem;

  test_mem_init (&mem, 3 * n * PAGE);
  for (guint i = 0; i < n; i++)
    {
      guint64 size = (1 + i % 3) * PAGE;

      descs[i] = desc_make (gpa, size, UVA_BASE + (guint64) (n - 1 - i) * 4 * PAGE, file_off);
      mem.map[file_off] = (guint8) i;
      mem.map[file_off + size - 1] = (guint8) (i ^ 0xff);
      fds[i] = dup_fd (mem.fd);
      gpa += size + (i % 2 ? PAGE : 0);
      file_off += size;
    }
  table = vhu_mem_table_new_from_descs (descs, fds, n, n, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (vhu_mem_table_get_n_regions (table), ==, n);
  g_assert_cmphex (vhu_mem_table_get_guest_end (table), ==,
                   descs[n - 1].guest_addr + descs[n - 1].size);

  g_assert_null (vhu_mem_table_lookup_gpa (table, 0));
  g_assert_null (vhu_mem_table_lookup_gpa (table, 0x100000 - 1));
  g_assert_null (vhu_mem_table_lookup_gpa (table, G_MAXUINT64));

  for (guint i = 0; i < n; i++)
    {
      const VhuMemRegion *r = vhu_mem_table_get_region (table, i);
      guint64 start = descs[i].guest_addr;
      guint64 end = start + descs[i].size;
      guint64 ustart = descs[i].user_addr;
      gboolean adjacent_before = i > 0 && (i - 1) % 2 == 0;
      gboolean adjacent_after = i + 1 < n && i % 2 == 0;
      guint8 *p;

      g_assert_true (vhu_mem_table_lookup_gpa (table, start) == r);
      g_assert_true (vhu_mem_table_lookup_gpa (table, start + 1) == r);
      g_assert_true (vhu_mem_table_lookup_gpa (table, end - 1) == r);
      if (adjacent_before)
        g_assert_true (vhu_mem_table_lookup_gpa (table, start - 1) ==
                       vhu_mem_table_get_region (table, i - 1));
      else
        g_assert_null (vhu_mem_table_lookup_gpa (table, start - 1));
      if (adjacent_after)
        g_assert_true (vhu_mem_table_lookup_gpa (table, end) ==
                       vhu_mem_table_get_region (table, i + 1));
      else
        g_assert_null (vhu_mem_table_lookup_gpa (table, end));

      p = vhu_mem_table_gpa_to_host (table, start, NULL);
      g_assert_cmpuint (*p, ==, (guint8) i);
      p = vhu_mem_table_gpa_to_host (table, end - 1, NULL);
      g_assert_cmpuint (*p, ==, (guint8) (i ^ 0xff));

      p = vhu_mem_table_uva_to_host (table, ustart, descs[i].size);
      g_assert_nonnull (p);
      g_assert_cmpuint (*p, ==, (guint8) i);
      p = vhu_mem_table_uva_to_host (table, ustart + descs[i].size - 1, 1);
      g_assert_nonnull (p);
      g_assert_cmpuint (*p, ==, (guint8) (i ^ 0xff));
      g_assert_null (vhu_mem_table_uva_to_host (table, ustart, descs[i].size + 1));
      g_assert_null (vhu_mem_table_uva_to_host (table, ustart - 1, 1));
    }

  test_mem_clear (&mem);
  g_clear_pointer (&table, vhu_mem_table_unref);
  g_assert_cmpuint (vhu_test_count_fds (), ==, fds0);
}

/* ---- dirty log ------------------------------------------------------------ */

static void
expect_log_fails (int fd, guint64 size, guint64 offset, gint code)
{
  g_autoptr (GError) error = NULL;

  g_assert_null (vhu_dirty_log_new (fd, size, offset, &error));
  g_assert_error (error, VHOST_USER_ERROR, code);
  g_test_message ("expected error: %s", error->message);
  if (fd >= 0)
    g_assert_false (fd_is_open (fd));
}

static void
test_log_invalid (void)
{
  guint fds0 = vhu_test_count_fds ();
  guint maps0 = vhu_test_count_memfd_mappings ();
  TestMem mem;

  test_mem_init (&mem, 64);
  expect_log_fails (dup_fd (mem.fd), 0, 0, VHOST_USER_ERROR_INVALID);
  expect_log_fails (dup_fd (mem.fd), 16, G_MAXUINT64 - 8, VHOST_USER_ERROR_INVALID);
  expect_log_fails (dup_fd (mem.fd), G_MAXUINT64, 1, VHOST_USER_ERROR_INVALID);
  expect_log_fails (dup_fd (mem.fd), G_MAXUINT64 - PAGE, 0x800, VHOST_USER_ERROR_INVALID);
  expect_log_fails (dup_fd (mem.fd), 65, 0, VHOST_USER_ERROR_MEMORY);
  expect_log_fails (dup_fd (mem.fd), 16, 49, VHOST_USER_ERROR_MEMORY);
  expect_log_fails (-1, 16, 0, VHOST_USER_ERROR_MEMORY);
  test_mem_clear (&mem);

  g_assert_cmpuint (vhu_test_count_fds (), ==, fds0);
  g_assert_cmpuint (vhu_test_count_memfd_mappings (), ==, maps0);
}

static void
test_log_covers (void)
{
  guint fds0 = vhu_test_count_fds ();
  g_autoptr (GError) error = NULL;
  g_autoptr (VhuDirtyLog) log = NULL;
  TestMem mem;
  const guint64 P = VHU_LOG_PAGE;

  test_mem_init (&mem, 16);
  log = vhu_dirty_log_new (dup_fd (mem.fd), 16, 0, &error); /* 128 pages */
  g_assert_no_error (error);
  g_assert_cmpuint (vhu_dirty_log_get_size (log), ==, 16);
  g_assert_cmpuint (vhu_test_count_fds (), ==, fds0 + 1);

  g_assert_true (vhu_dirty_log_covers (log, 0, 0));
  g_assert_true (vhu_dirty_log_covers (log, G_MAXUINT64, 0));
  g_assert_true (vhu_dirty_log_covers (log, 0, 1));
  g_assert_true (vhu_dirty_log_covers (log, 0, 128 * P));
  g_assert_false (vhu_dirty_log_covers (log, 0, 128 * P + 1));
  g_assert_true (vhu_dirty_log_covers (log, 127 * P, P));
  g_assert_true (vhu_dirty_log_covers (log, 128 * P - 1, 1));
  g_assert_false (vhu_dirty_log_covers (log, 128 * P - 1, 2));
  g_assert_false (vhu_dirty_log_covers (log, 128 * P, 1));
  g_assert_false (vhu_dirty_log_covers (log, G_MAXUINT64, 1));
  g_assert_false (vhu_dirty_log_covers (log, G_MAXUINT64, 2));
  g_assert_false (vhu_dirty_log_covers (log, 1, G_MAXUINT64));

  g_assert_true (vhu_dirty_log_ref (log) == log);
  vhu_dirty_log_unref (log);

  test_mem_clear (&mem);
  g_clear_pointer (&log, vhu_dirty_log_unref);
  g_assert_cmpuint (vhu_test_count_fds (), ==, fds0);
}

/* Marks [gpa, gpa + len) in a log of `size` bytes at `offset` in a memfd of
 * `file_size` bytes and compares the whole file with a bit-by-bit model. */
static void
check_mark (TestMem *mem, VhuDirtyLog *log, guint64 offset, guint64 size, guint64 gpa, guint64 len)
{
  g_autofree guint8 *want = g_malloc0 (mem->size);
  guint64 last;

  memset (mem->map, 0, mem->size);
  vhu_dirty_log_mark (log, gpa, len);

  if (len > 0)
    {
      if (gpa + (len - 1) < gpa)
        last = G_MAXUINT64;
      else
        last = gpa + (len - 1);
      for (guint64 page = gpa / VHU_LOG_PAGE; page <= last / VHU_LOG_PAGE && page < size * 8;
           page++)
        want[offset + page / 8] |= (guint8) (1u << (page % 8));
    }
  for (gsize i = 0; i < mem->size; i++)
    if (want[i] != mem->map[i])
      {
        g_test_message ("mark(0x%" G_GINT64_MODIFIER "x, 0x%" G_GINT64_MODIFIER "x), log at %"
                        G_GUINT64_FORMAT " size %" G_GUINT64_FORMAT ": byte %" G_GSIZE_FORMAT,
                        gpa, len, offset, size, i);
        g_assert_cmphex (mem->map[i], ==, want[i]);
      }
}

static void
test_log_mark (void)
{
  guint fds0 = vhu_test_count_fds ();
  const guint64 P = VHU_LOG_PAGE;
  /* log offset in the file, log size, file size: guard bytes around the log,
   * an unaligned log (byte path only), an aligned one (word path), and one
   * ending exactly at the end of a one-page file */
  const struct
  {
    guint64 offset, size, file_size;
  } layouts[] = {
    { 8, 16, 40 },
    { 3, 33, 64 },
    { 0, 32, 32 },
    { 64, 40, 128 },
    { PAGE - 16, 16, PAGE },
    { PAGE + 8, 64, 2 * PAGE },
  };

  for (guint l = 0; l < G_N_ELEMENTS (layouts); l++)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (VhuDirtyLog) log = NULL;
      guint64 size = layouts[l].size;
      guint64 pages = size * 8;
      TestMem mem;
      GRand *rand = g_rand_new_with_seed (l);

      test_mem_init (&mem, layouts[l].file_size);
      log = vhu_dirty_log_new (dup_fd (mem.fd), size, layouts[l].offset, &error);
      g_assert_no_error (error);

      check_mark (&mem, log, layouts[l].offset, size, 0, 0);
      check_mark (&mem, log, layouts[l].offset, size, 0, 1);
      check_mark (&mem, log, layouts[l].offset, size, P - 1, 2);
      check_mark (&mem, log, layouts[l].offset, size, 29 * P + 5, 10 * P);
      check_mark (&mem, log, layouts[l].offset, size, 64 * P, 64 * P);
      check_mark (&mem, log, layouts[l].offset, size, 63 * P + 1, 130 * P);
      check_mark (&mem, log, layouts[l].offset, size, (pages - 8) * P, 100 * P);
      check_mark (&mem, log, layouts[l].offset, size, (pages - 1) * P, 1);
      check_mark (&mem, log, layouts[l].offset, size, pages * P - 1, 2);
      check_mark (&mem, log, layouts[l].offset, size, pages * P, P);
      check_mark (&mem, log, layouts[l].offset, size, 0, G_MAXUINT64);
      check_mark (&mem, log, layouts[l].offset, size, 5 * P, G_MAXUINT64);
      check_mark (&mem, log, layouts[l].offset, size, G_MAXUINT64 - 10, 100);
      check_mark (&mem, log, layouts[l].offset, size, G_MAXUINT64, 1);
      for (guint i = 0; i < 2000; i++)
        {
          gint32 max_gpa = (gint32) ((pages + 16) * P);
          gint32 max_len = (gint32) ((pages / 2 + 70) * P);
          guint64 gpa = (guint64) g_rand_int_range (rand, 0, max_gpa);
          guint64 len = (guint64) g_rand_int_range (rand, 0, max_len);

          check_mark (&mem, log, layouts[l].offset, size, gpa, len);
        }

      /* marks accumulate */
      memset (mem.map, 0, mem.size);
      vhu_dirty_log_mark (log, 0, 1);
      vhu_dirty_log_mark (log, 2 * P, 1);
      g_assert_cmpuint (mem.map[layouts[l].offset], ==, 0x05);

      g_rand_free (rand);
      test_mem_clear (&mem);
      g_clear_pointer (&log, vhu_dirty_log_unref);
    }
  g_assert_cmpuint (vhu_test_count_fds (), ==, fds0);
}

/* ---- inflight ------------------------------------------------------------- */

static void
test_inflight_region_size (void)
{
  g_assert_cmpuint (vhu_inflight_queue_region_size (1, FALSE), ==, 64);
  g_assert_cmpuint (vhu_inflight_queue_region_size (256, FALSE), ==, 16 + 256 * 16 + 48);
  g_assert_cmpuint (vhu_inflight_queue_region_size (1, TRUE), ==, 64);
  g_assert_cmpuint (vhu_inflight_queue_region_size (3, TRUE), ==, 128);
  g_assert_cmpuint (vhu_inflight_queue_region_size (32768, TRUE), ==, 32 + 32768 * 32 + 32);
  for (guint qs = 1; qs <= VHU_MAX_QUEUE_SIZE; qs = qs * 3 + 1)
    for (gboolean packed = FALSE; packed <= TRUE; packed++)
      {
        gsize s = vhu_inflight_queue_region_size ((guint16) qs, packed);
        gsize need = packed ? sizeof (VhuInflightQueuePacked) + qs * sizeof (VhuInflightDescPacked)
                            : sizeof (VhuInflightQueueSplit) + qs * sizeof (VhuInflightDescSplit);

        g_assert_cmpuint (s % 64, ==, 0);
        g_assert_cmpuint (s, >=, need);
        g_assert_cmpuint (s, <, need + 64);
      }
}

static void
test_inflight_new_split (void)
{
  guint fds0 = vhu_test_count_fds ();
  g_autoptr (GError) error = NULL;
  g_autoptr (VhuInflight) inflight = NULL;
  gsize region_size = vhu_inflight_queue_region_size (256, FALSE);
  struct stat st;
  int fd = -1;
  guint8 *map;

  inflight = vhu_inflight_new (2, 256, FALSE, &fd, &error);
  g_assert_no_error (error);
  g_assert_nonnull (inflight);
  g_assert_cmpint (fd, >=, 0);
  g_assert_cmpuint (vhu_inflight_get_num_queues (inflight), ==, 2);
  g_assert_cmpuint (vhu_inflight_get_queue_size (inflight), ==, 256);
  g_assert_cmpuint (vhu_inflight_get_mmap_size (inflight), ==, 2 * region_size);

  g_assert_cmpint (fstat (fd, &st), ==, 0);
  g_assert_cmpint (st.st_size, ==, 2 * region_size);
  g_assert_cmpint (fcntl (fd, F_GET_SEALS) & (F_SEAL_SHRINK | F_SEAL_GROW), ==,
                   F_SEAL_SHRINK | F_SEAL_GROW);
  g_assert_cmpint (ftruncate (fd, 0), ==, -1);
  g_assert_true (fcntl (fd, F_GETFD) & FD_CLOEXEC);

  g_assert_null (vhu_inflight_get_queue_region (inflight, 2));
  g_assert_cmpuint ((guint8 *) vhu_inflight_get_queue_region (inflight, 1) -
                      (guint8 *) vhu_inflight_get_queue_region (inflight, 0),
                    ==, region_size);

  map = mmap (NULL, 2 * region_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  g_assert_true (map != MAP_FAILED);
  for (guint16 q = 0; q < 2; q++)
    {
      VhuInflightQueueSplit *region = vhu_inflight_get_queue_region (inflight, q);
      VhuInflightQueueSplit *shared = (VhuInflightQueueSplit *) (gpointer) (map + q * region_size);

      g_assert_cmpuint (region->features, ==, 0);
      g_assert_cmpuint (region->version, ==, VHU_INFLIGHT_VERSION);
      g_assert_cmpuint (region->desc_num, ==, 256);
      g_assert_cmpuint (region->last_batch_head, ==, 0);
      g_assert_cmpuint (region->used_idx, ==, 0);
      for (guint i = 0; i < 256; i++)
        {
          g_assert_cmpuint (region->desc[i].inflight, ==, 0);
          g_assert_cmpuint (region->desc[i].next, ==, 0);
          g_assert_cmpuint (region->desc[i].counter, ==, 0);
        }
      /* the same memory as the fd's */
      region->desc[3].counter = 77 + q;
      g_assert_cmpuint (shared->desc[3].counter, ==, 77 + q);
    }
  munmap (map, 2 * region_size);
  close (fd);

  g_clear_pointer (&inflight, vhu_inflight_free);
  g_assert_cmpuint (vhu_test_count_fds (), ==, fds0);
}

static void
test_inflight_new_packed (void)
{
  guint fds0 = vhu_test_count_fds ();
  g_autoptr (GError) error = NULL;
  g_autoptr (VhuInflight) inflight = NULL;
  int fd = -1;

  /* packed rings need no power of 2 */
  inflight = vhu_inflight_new (3, 100, TRUE, &fd, &error);
  g_assert_no_error (error);
  g_assert_cmpint (fd, >=, 0);
  g_assert_cmpuint (vhu_inflight_get_mmap_size (inflight), ==,
                    3 * vhu_inflight_queue_region_size (100, TRUE));
  for (guint16 q = 0; q < 3; q++)
    {
      VhuInflightQueuePacked *region = vhu_inflight_get_queue_region (inflight, q);

      g_assert_cmpuint (region->features, ==, 0);
      g_assert_cmpuint (region->version, ==, VHU_INFLIGHT_VERSION);
      g_assert_cmpuint (region->desc_num, ==, 100);
      g_assert_cmpuint (region->free_head, ==, 0);
      g_assert_cmpuint (region->old_free_head, ==, 0);
      g_assert_cmpuint (region->used_idx, ==, 0);
      g_assert_cmpuint (region->old_used_idx, ==, 0);
      g_assert_cmpuint (region->used_wrap_counter, ==, 0);
      g_assert_cmpuint (region->old_used_wrap_counter, ==, 0);
      for (guint i = 0; i < 100; i++)
        {
          g_assert_cmpuint (region->desc[i].next, ==, i + 1);
          g_assert_cmpuint (region->desc[i].inflight, ==, 0);
          g_assert_cmpuint (region->desc[i].counter, ==, 0);
        }
    }
  close (fd);
  g_clear_pointer (&inflight, vhu_inflight_free);
  g_assert_cmpuint (vhu_test_count_fds (), ==, fds0);
}

static void
test_inflight_new_invalid (void)
{
  guint fds0 = vhu_test_count_fds ();
  const struct
  {
    guint16 num_queues, queue_size;
    gboolean packed;
  } bad[] = {
    { 0, 256, FALSE }, { 1, 0, FALSE }, { 1, 0, TRUE },     { 1, 3, FALSE },
    { 1, 100, FALSE }, { 1, 32769, TRUE }, { 1, 65535, TRUE }, { 1, 65535, FALSE },
  };

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr (GError) error = NULL;
      int fd = 1234;

      g_assert_null (vhu_inflight_new (bad[i].num_queues, bad[i].queue_size, bad[i].packed, &fd,
                                       &error));
      g_assert_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID);
      g_assert_cmpint (fd, ==, -1);
    }
  g_assert_cmpuint (vhu_test_count_fds (), ==, fds0);
}

static void
expect_inflight_fails (int fd,
                       guint64 mmap_size,
                       guint64 mmap_offset,
                       guint16 num_queues,
                       guint16 queue_size,
                       gboolean packed)
{
  g_autoptr (GError) error = NULL;

  g_assert_null (vhu_inflight_new_from_fd (fd, mmap_size, mmap_offset, num_queues, queue_size,
                                           packed, &error));
  g_assert_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID);
  g_test_message ("expected error: %s", error->message);
  if (fd >= 0)
    g_assert_false (fd_is_open (fd));
}

/* Bad geometry (M27). */
static void
test_inflight_from_fd_invalid (void)
{
  guint fds0 = vhu_test_count_fds ();
  guint maps0 = vhu_test_count_memfd_mappings ();
  gsize rs = vhu_inflight_queue_region_size (128, FALSE);
  TestMem mem;

  test_mem_init (&mem, 2 * rs);
  expect_inflight_fails (dup_fd (mem.fd), 2 * rs, 0, 0, 128, FALSE);
  expect_inflight_fails (dup_fd (mem.fd), 2 * rs, 0, 2, 0, FALSE);
  expect_inflight_fails (dup_fd (mem.fd), 2 * rs, 0, 2, 0, TRUE);
  expect_inflight_fails (dup_fd (mem.fd), 2 * rs, 0, 2, 96, FALSE);
  expect_inflight_fails (dup_fd (mem.fd), 2 * rs, 0, 1, 32769, TRUE);
  expect_inflight_fails (dup_fd (mem.fd), 2 * rs, 0, 1, 65535, FALSE);
  /* mmap_size smaller than num_queues regions */
  expect_inflight_fails (dup_fd (mem.fd), 2 * rs - 1, 0, 2, 128, FALSE);
  expect_inflight_fails (dup_fd (mem.fd), 0, 0, 1, 1, FALSE);
  expect_inflight_fails (dup_fd (mem.fd), 2 * rs, 0, 65535, 32768, TRUE);
  /* offset + size overflows */
  expect_inflight_fails (dup_fd (mem.fd), 2 * rs, G_MAXUINT64 - rs, 2, 128, FALSE);
  expect_inflight_fails (dup_fd (mem.fd), G_MAXUINT64, 1, 2, 128, FALSE);
  /* fd too small */
  expect_inflight_fails (dup_fd (mem.fd), 2 * rs, 1, 2, 128, FALSE);
  expect_inflight_fails (dup_fd (mem.fd), 3 * rs, 0, 2, 128, FALSE);
  expect_inflight_fails (dup_fd (mem.fd), 2 * rs, 0, 3, 128, FALSE);
  /* bad fd */
  expect_inflight_fails (-1, 2 * rs, 0, 2, 128, FALSE);
  test_mem_clear (&mem);

  g_assert_cmpuint (vhu_test_count_fds (), ==, fds0);
  g_assert_cmpuint (vhu_test_count_memfd_mappings (), ==, maps0);
}

/* Bad contents (M28): nothing is changed in a rejected buffer. */
static void
test_inflight_from_fd_contents (void)
{
  guint fds0 = vhu_test_count_fds ();
  guint maps0 = vhu_test_count_memfd_mappings ();
  gsize rs = vhu_inflight_queue_region_size (128, FALSE);
  gsize rsp = vhu_inflight_queue_region_size (128, TRUE);
  VhuInflightQueueSplit *q0;
  VhuInflightQueueSplit *q1;
  VhuInflightQueuePacked *p1;
  TestMem mem;

  test_mem_init (&mem, 2 * MAX (rs, rsp));
  q0 = (VhuInflightQueueSplit *) (gpointer) mem.map;
  q1 = (VhuInflightQueueSplit *) (gpointer) (mem.map + rs);

  /* queue 0 uninitialised, queue 1 of an unknown version */
  q1->version = 7;
  q1->desc_num = 128;
  expect_inflight_fails (dup_fd (mem.fd), 2 * rs, 0, 2, 128, FALSE);
  g_assert_cmpuint (q0->version, ==, 0);
  g_assert_cmpuint (q0->desc_num, ==, 0);

  /* desc_num mismatch */
  q1->version = VHU_INFLIGHT_VERSION;
  q1->desc_num = 64;
  expect_inflight_fails (dup_fd (mem.fd), 2 * rs, 0, 2, 128, FALSE);
  q1->desc_num = 256;
  expect_inflight_fails (dup_fd (mem.fd), 2 * rs, 0, 2, 128, FALSE);
  g_assert_cmpuint (q0->version, ==, 0);

  /* packed: same checks */
  memset (mem.map, 0, mem.size);
  p1 = (VhuInflightQueuePacked *) (gpointer) (mem.map + rsp);
  p1->version = 0xffff;
  p1->desc_num = 128;
  expect_inflight_fails (dup_fd (mem.fd), 2 * rsp, 0, 2, 128, TRUE);
  p1->version = VHU_INFLIGHT_VERSION;
  p1->desc_num = 127;
  expect_inflight_fails (dup_fd (mem.fd), 2 * rsp, 0, 2, 128, TRUE);

  test_mem_clear (&mem);
  g_assert_cmpuint (vhu_test_count_fds (), ==, fds0);
  g_assert_cmpuint (vhu_test_count_memfd_mappings (), ==, maps0);
}

static void
test_inflight_round_trip (void)
{
  guint fds0 = vhu_test_count_fds ();
  g_autoptr (GError) error = NULL;
  VhuInflight *inflight;
  VhuInflightQueueSplit *q;
  VhuInflightQueuePacked *p;
  guint64 size;
  int fd = -1;

  /* split */
  inflight = vhu_inflight_new (2, 128, FALSE, &fd, &error);
  g_assert_no_error (error);
  size = vhu_inflight_get_mmap_size (inflight);
  q = vhu_inflight_get_queue_region (inflight, 1);
  q->desc[5].inflight = 1;
  q->desc[5].counter = 42;
  q->used_idx = 9;
  vhu_inflight_free (inflight);

  inflight = vhu_inflight_new_from_fd (fd, size, 0, 2, 128, FALSE, &error);
  g_assert_no_error (error);
  g_assert_nonnull (inflight);
  q = vhu_inflight_get_queue_region (inflight, 1);
  g_assert_cmpuint (q->version, ==, VHU_INFLIGHT_VERSION);
  g_assert_cmpuint (q->desc_num, ==, 128);
  g_assert_cmpuint (q->desc[5].inflight, ==, 1);
  g_assert_cmpuint (q->desc[5].counter, ==, 42);
  g_assert_cmpuint (q->used_idx, ==, 9);
  g_assert_cmpuint (vhu_inflight_get_mmap_size (inflight), ==, size);
  vhu_inflight_free (inflight);
  g_assert_cmpuint (vhu_test_count_fds (), ==, fds0);

  /* packed */
  inflight = vhu_inflight_new (1, 100, TRUE, &fd, &error);
  g_assert_no_error (error);
  size = vhu_inflight_get_mmap_size (inflight);
  p = vhu_inflight_get_queue_region (inflight, 0);
  p->free_head = 3;
  p->desc[0].inflight = 1;
  p->desc[0].addr = 0x1234;
  vhu_inflight_free (inflight);

  inflight = vhu_inflight_new_from_fd (fd, size, 0, 1, 100, TRUE, &error);
  g_assert_no_error (error);
  p = vhu_inflight_get_queue_region (inflight, 0);
  g_assert_cmpuint (p->version, ==, VHU_INFLIGHT_VERSION);
  g_assert_cmpuint (p->free_head, ==, 3);
  g_assert_cmpuint (p->desc[0].addr, ==, 0x1234);
  g_assert_cmpuint (p->desc[99].next, ==, 100);
  vhu_inflight_free (inflight);

  g_assert_cmpuint (vhu_test_count_fds (), ==, fds0);
}

/* An all-zero buffer (version 0), at an unaligned offset, gets initialised. */
static void
test_inflight_from_fd_uninitialised (void)
{
  guint fds0 = vhu_test_count_fds ();
  g_autoptr (GError) error = NULL;
  g_autoptr (VhuInflight) inflight = NULL;
  gsize rs = vhu_inflight_queue_region_size (16, TRUE);
  guint64 offset = PAGE + 64;
  VhuInflightQueuePacked *p;
  TestMem mem;

  test_mem_init (&mem, offset + 2 * rs + 100);
  memset (mem.map + offset, 0xab, 2 * rs); /* garbage, but version 0 */
  for (guint i = 0; i < 2; i++)
    {
      p = (VhuInflightQueuePacked *) (gpointer) (mem.map + offset + i * rs);
      p->version = 0;
    }
  inflight = vhu_inflight_new_from_fd (dup_fd (mem.fd), 2 * rs + 100, offset, 2, 16, TRUE, &error);
  g_assert_no_error (error);
  for (guint i = 0; i < 2; i++)
    {
      p = (VhuInflightQueuePacked *) (gpointer) (mem.map + offset + i * rs);
      g_assert_true (vhu_inflight_get_queue_region (inflight, (guint16) i) != NULL);
      g_assert_cmpuint (p->version, ==, VHU_INFLIGHT_VERSION);
      g_assert_cmpuint (p->desc_num, ==, 16);
      g_assert_cmpuint (p->features, ==, 0);
      g_assert_cmpuint (p->free_head, ==, 0);
      for (guint j = 0; j < 16; j++)
        {
          g_assert_cmpuint (p->desc[j].next, ==, j + 1);
          g_assert_cmpuint (p->desc[j].inflight, ==, 0);
          g_assert_cmpuint (p->desc[j].counter, ==, 0);
        }
      p->desc[1].counter = 5;
      g_assert_cmpuint (((VhuInflightQueuePacked *) vhu_inflight_get_queue_region (
                           inflight, (guint16) i))->desc[1].counter,
                        ==, 5);
    }
  /* the bytes after the regions are untouched */
  g_assert_cmpuint (mem.map[offset + 2 * rs], ==, 0);

  test_mem_clear (&mem);
  g_clear_pointer (&inflight, vhu_inflight_free);
  g_assert_cmpuint (vhu_test_count_fds (), ==, fds0);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/vhost-user/memory/set/valid", test_set_valid);
  g_test_add_func ("/vhost-user/memory/set/unsorted", test_set_unsorted);
  g_test_add_func ("/vhost-user/memory/set/count", test_set_count);
  g_test_add_func ("/vhost-user/memory/set/size-zero", test_set_size_zero);
  g_test_add_func ("/vhost-user/memory/set/overflow", test_set_overflow);
  g_test_add_func ("/vhost-user/memory/set/overlap-gpa", test_set_overlap_gpa);
  g_test_add_func ("/vhost-user/memory/set/overlap-uva", test_set_overlap_uva);
  g_test_add_func ("/vhost-user/memory/set/duplicate", test_set_duplicate);
  g_test_add_func ("/vhost-user/memory/add/repeated", test_add_repeated);
  g_test_add_func ("/vhost-user/memory/set/fd-too-small", test_set_fd_too_small);
  g_test_add_func ("/vhost-user/memory/set/bad-fd", test_set_bad_fd);
  g_test_add_func ("/vhost-user/memory/set/unaligned-offset", test_set_unaligned_offset);
  g_test_add_func ("/vhost-user/memory/set/commit-on-success", test_set_commit_on_success);
  g_test_add_func ("/vhost-user/memory/set/release", test_set_release);
  g_test_add_func ("/vhost-user/memory/empty", test_empty);
  g_test_add_func ("/vhost-user/memory/add/max", test_add_max);
  g_test_add_func ("/vhost-user/memory/add/invalid", test_add_invalid);
  g_test_add_func ("/vhost-user/memory/remove", test_remove);
  g_test_add_func ("/vhost-user/memory/rcu", test_rcu);
  g_test_add_func ("/vhost-user/memory/gpa-to-iov", test_iov);
  g_test_add_func ("/vhost-user/memory/gpa-to-host", test_gpa_to_host);
  g_test_add_func ("/vhost-user/memory/uva-to-host", test_uva);
  g_test_add_func ("/vhost-user/memory/lookup-509", test_lookup_509);
  g_test_add_func ("/vhost-user/dirty-log/invalid", test_log_invalid);
  g_test_add_func ("/vhost-user/dirty-log/covers", test_log_covers);
  g_test_add_func ("/vhost-user/dirty-log/mark", test_log_mark);
  g_test_add_func ("/vhost-user/inflight/region-size", test_inflight_region_size);
  g_test_add_func ("/vhost-user/inflight/new/split", test_inflight_new_split);
  g_test_add_func ("/vhost-user/inflight/new/packed", test_inflight_new_packed);
  g_test_add_func ("/vhost-user/inflight/new/invalid", test_inflight_new_invalid);
  g_test_add_func ("/vhost-user/inflight/from-fd/invalid", test_inflight_from_fd_invalid);
  g_test_add_func ("/vhost-user/inflight/from-fd/contents", test_inflight_from_fd_contents);
  g_test_add_func ("/vhost-user/inflight/from-fd/uninitialised",
                   test_inflight_from_fd_uninitialised);
  g_test_add_func ("/vhost-user/inflight/round-trip", test_inflight_round_trip);

  return g_test_run ();
}
