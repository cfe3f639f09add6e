/* ffmpeg_dl: FFmpeg's libraries (libavutil, libavcodec, libavformat, libswresample) opened
 * with dlopen when audio is first probed or decoded, never linked into the controller.
 *
 * Linking them mapped ~150 shared libraries (x265, rav1e, librsvg, ICU, ...) into every
 * `gpuscribe serve`, most of its idle RSS and start-up time, although a server that only
 * forwards jobs to a rented GPU never decodes anything. The headers still come from the -dev
 * packages at compile time (types, macros, inline helpers); the sonames are the ones those
 * packages link to (GS_SONAME_AVUTIL, ... from the Makefile), so the ABI matches the headers.
 *
 * ffmpeg_dl_load() opens the four libraries and resolves every function audio.c calls into
 * the table `gs_ff`, once per process (pthread_once; later calls return the first result).
 * audio.c calls FFmpeg only as gs_ff.name(...), and only after a successful load.
 * GS_FFMPEG_SONAME_TEST (tests only) replaces libavformat's soname, e.g. by a missing one.
 */
#ifndef GS_FFMPEG_DL_H
#define GS_FFMPEG_DL_H

#include <stddef.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/avstring.h>
#include <libavutil/channel_layout.h>
#include <libswresample/swresample.h>

/* X(library, function): every FFmpeg function audio.c uses (inline helpers such as av_q2d
 * need no entry; a missing entry fails the link, as the libraries are not linked). */
#define GS_FF_FUNCS(X)                                                                      \
    X(AVUTIL, av_channel_layout_compare) X(AVUTIL, av_channel_layout_copy)                  \
    X(AVUTIL, av_channel_layout_default) X(AVUTIL, av_channel_layout_uninit)                \
    X(AVUTIL, av_dict_free) X(AVUTIL, av_dict_set) X(AVUTIL, av_frame_alloc)                \
    X(AVUTIL, av_frame_free) X(AVUTIL, av_frame_unref) X(AVUTIL, av_free) X(AVUTIL, av_freep) \
    X(AVUTIL, av_log_format_line2) X(AVUTIL, av_log_set_callback) X(AVUTIL, av_log_set_level) \
    X(AVUTIL, av_malloc) X(AVUTIL, av_match_list) X(AVUTIL, av_strerror)                    \
    X(AVCODEC, av_packet_alloc) X(AVCODEC, av_packet_free) X(AVCODEC, av_packet_unref)      \
    X(AVCODEC, avcodec_alloc_context3) X(AVCODEC, avcodec_find_decoder)                     \
    X(AVCODEC, avcodec_free_context) X(AVCODEC, avcodec_get_name) X(AVCODEC, avcodec_open2) \
    X(AVCODEC, avcodec_parameters_to_context) X(AVCODEC, avcodec_receive_frame)             \
    X(AVCODEC, avcodec_send_packet)                                                         \
    X(AVFORMAT, av_find_best_stream) X(AVFORMAT, av_probe_input_buffer2)                    \
    X(AVFORMAT, av_read_frame) X(AVFORMAT, avformat_alloc_context)                          \
    X(AVFORMAT, avformat_close_input) X(AVFORMAT, avformat_find_stream_info)                \
    X(AVFORMAT, avformat_open_input) X(AVFORMAT, avio_alloc_context)                        \
    X(AVFORMAT, avio_context_free)                                                          \
    X(SWRESAMPLE, swr_alloc_set_opts2) X(SWRESAMPLE, swr_convert) X(SWRESAMPLE, swr_free)   \
    X(SWRESAMPLE, swr_get_out_samples) X(SWRESAMPLE, swr_init)

struct gs_ffmpeg {
#define GS_FF_MEMBER(lib, f) __typeof__(f) *f;
    GS_FF_FUNCS(GS_FF_MEMBER)
#undef GS_FF_MEMBER
};

/* Filled by a successful ffmpeg_dl_load; read only after one. */
extern struct gs_ffmpeg gs_ff;

/* 0 when FFmpeg is loaded (now or by an earlier call); -1 with e.g. "FFmpeg's
 * libavformat.so.59 is not installed: apt install libavformat59" in err (every later call
 * gives the same answer: nothing is retried within a process). Thread-safe. */
int ffmpeg_dl_load(char *err, size_t errlen);

/* How many times the loading itself ran in this process (0 or 1; for tests). */
int ffmpeg_dl_load_count(void);

/* The sonames opened, "libavutil.so.57 libavcodec.so.59 ..." (for logs and docs). */
const char *ffmpeg_dl_sonames(void);

#endif
