/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 */

#include "config.h"

#include <string.h>

#include "vhu-net-frame.h"

void
vhu_iov_cursor_init (VhuIovCursor *cur, const struct iovec *iov, guint n)
{
  cur->iov = iov;
  cur->n = n;
  cur->i = 0;
  cur->off = 0;
}

/* The bytes left in the current buffer, moving past empty ones. */
G_ALWAYS_INLINE static inline gsize
cursor_avail (VhuIovCursor *cur)
{
  while (cur->i < cur->n && cur->off >= cur->iov[cur->i].iov_len)
    {
      cur->i++;
      cur->off = 0;
    }
  return cur->i < cur->n ? cur->iov[cur->i].iov_len - cur->off : 0;
}

G_ALWAYS_INLINE static inline guint8 *
cursor_ptr (VhuIovCursor *cur)
{
  return (guint8 *) cur->iov[cur->i].iov_base + cur->off;
}

gsize
vhu_iov_cursor_skip (VhuIovCursor *cur, gsize len)
{
  gsize done = 0;

  while (done < len)
    {
      gsize chunk = MIN (cursor_avail (cur), len - done);

      if (chunk == 0)
        break;
      cur->off += chunk;
      done += chunk;
    }
  return done;
}

gsize
vhu_iov_cursor_copy (VhuIovCursor *dst, VhuIovCursor *src, gsize len)
{
  gsize done = 0;

  while (done < len)
    {
      gsize chunk = MIN (MIN (cursor_avail (dst), cursor_avail (src)), len - done);

      if (chunk == 0)
        break;
      memcpy (cursor_ptr (dst), cursor_ptr (src), chunk);
      dst->off += chunk;
      src->off += chunk;
      done += chunk;
    }
  return done;
}

gsize
vhu_iov_cursor_read (VhuIovCursor *src, void *buf, gsize len)
{
  gsize done = 0;

  while (done < len)
    {
      gsize chunk = MIN (cursor_avail (src), len - done);

      if (chunk == 0)
        break;
      memcpy ((guint8 *) buf + done, cursor_ptr (src), chunk);
      src->off += chunk;
      done += chunk;
    }
  return done;
}

gsize
vhu_iov_cursor_write (VhuIovCursor *dst, const void *buf, gsize len)
{
  gsize done = 0;

  while (done < len)
    {
      gsize chunk = MIN (cursor_avail (dst), len - done);

      if (chunk == 0)
        break;
      memcpy (cursor_ptr (dst), (const guint8 *) buf + done, chunk);
      dst->off += chunk;
      done += chunk;
    }
  return done;
}

guint64
vhu_net_checksum_add (VhuIovCursor *src, gsize len, guint64 sum, gboolean *odd)
{
  while (len > 0)
    {
      gsize chunk = MIN (cursor_avail (src), len);
      const guint8 *p;
      gsize k = 0;

      if (chunk == 0)
        break;
      p = cursor_ptr (src);
      if (*odd)
        {
          sum += p[k++];
          *odd = FALSE;
        }
      for (; k + 1 < chunk; k += 2)
        sum += ((guint) p[k] << 8) | p[k + 1];
      if (k < chunk)
        {
          sum += (guint) p[k] << 8;
          *odd = TRUE;
        }
      src->off += chunk;
      len -= chunk;
    }
  return sum;
}

guint16
vhu_net_checksum_finish (guint64 sum)
{
  guint16 folded;

  while (sum >> 16)
    sum = (sum & 0xffff) + (sum >> 16);
  folded = ~(guint16) sum;
  return folded != 0 ? folded : 0xffff;
}

void
vhu_net_build_rarp (guint8 frame[VHU_NET_RARP_FRAME_SIZE], const guint8 mac[6])
{
  static const guint8 arp_header[] = {
    0x80, 0x35,             /* EtherType: RARP */
    0x00, 0x01,             /* hardware: Ethernet */
    0x08, 0x00,             /* protocol: IPv4 */
    6, 4,                   /* address lengths */
    0x00, 0x03,             /* operation: reverse request */
  };
  guint8 *p = frame;

  memset (frame, 0, VHU_NET_RARP_FRAME_SIZE);
  memset (p, 0xff, 6); /* broadcast */
  p += 6;
  memcpy (p, mac, 6);
  p += 6;
  memcpy (p, arp_header, sizeof arp_header);
  p += sizeof arp_header;
  memcpy (p, mac, 6); /* sender hardware address; sender IP 0.0.0.0 */
  p += 6 + 4;
  memcpy (p, mac, 6); /* target hardware address; target IP 0.0.0.0 */
}

gboolean
vhu_net_parse_mac (const char *str, guint8 mac[6])
{
  for (guint i = 0; i < 6; i++)
    {
      gint hi, lo;

      if (i > 0 && *str++ != ':')
        return FALSE;
      hi = g_ascii_xdigit_value (str[0]);
      lo = hi >= 0 ? g_ascii_xdigit_value (str[1]) : -1;
      if (lo < 0)
        return FALSE;
      mac[i] = (guint8) (hi << 4 | lo);
      str += 2;
    }
  return *str == '\0';
}
