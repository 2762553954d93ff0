/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * blkzeroout DEVICE OFFSET LENGTH [unmap]: zeroes a byte range of a block
 * device in the tiny guest, which has no util-linux: BLKZEROOUT (the kernel
 * sends virtio-blk WRITE_ZEROES without the unmap flag), or with "unmap"
 * fallocate(PUNCH_HOLE) (WRITE_ZEROES with unmap). Exits 0 on success, else
 * the errno.
 *
 * Built static, without a C library, for x86-64 (the guest's architecture),
 * so that tests/test-guest-blk.py can carry it into the guest inside its
 * script: a few hundred bytes, no dependency.
 */

#define SYS_write 1
#define SYS_open 2
#define SYS_ioctl 16
#define SYS_exit 60
#define SYS_fallocate 285

#define O_WRONLY 01
#define BLKZEROOUT 0x127f /* _IO (0x12, 127) */
#define FALLOC_FL_KEEP_SIZE 0x01
#define FALLOC_FL_PUNCH_HOLE 0x02

typedef unsigned long u64;

static long
syscall4 (long n, long a, long b, long c, long d)
{
  long ret;
  register long r10 __asm__ ("r10") = d;

  __asm__ volatile ("syscall"
                    : "=a"(ret)
                    : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10)
                    : "rcx", "r11", "memory");
  return ret;
}

static u64
parse (const char *s)
{
  u64 v = 0;

  while (*s >= '0' && *s <= '9')
    v = v * 10 + (u64) (*s++ - '0');
  return v;
}

static void __attribute__ ((noreturn))
finish (long status)
{
  for (;;)
    syscall4 (SYS_exit, status, 0, 0, 0);
}

void start_c (long *sp) __attribute__ ((noreturn, used));

void
start_c (long *sp)
{
  long argc = sp[0];
  char **argv = (char **) (sp + 1);
  u64 range[2];
  long fd, r;

  if (argc < 4)
    {
      static const char usage[] = "usage: blkzeroout DEVICE OFFSET LENGTH [unmap]\n";

      syscall4 (SYS_write, 2, (long) usage, sizeof usage - 1, 0);
      finish (2);
    }
  fd = syscall4 (SYS_open, (long) argv[1], O_WRONLY, 0, 0);
  if (fd < 0)
    finish (-fd);
  range[0] = parse (argv[2]);
  range[1] = parse (argv[3]);
  if (argc > 4)
    r = syscall4 (SYS_fallocate, fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (long) range[0],
                  (long) range[1]);
  else
    r = syscall4 (SYS_ioctl, fd, BLKZEROOUT, (long) range, 0);
  finish (r < 0 ? -r : 0);
}

/* The kernel enters here with argc, argv... on the stack. */
__asm__ (".text\n"
         ".globl _start\n"
         "_start:\n"
         "  mov %rsp, %rdi\n"
         "  and $-16, %rsp\n"
         "  call start_c\n");
