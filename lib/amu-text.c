/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "amu-text.h"

/* Rewrites @text in place: same length or shorter, never longer. */
static void
sanitize_in_place(char *text)
{
	char *out = text;
	const char *in = text;
	const char *end = text + strlen(text);

	while (in < end) {
		gunichar c = g_utf8_get_char_validated(in, end - in);
		if (c == (gunichar)-1 || c == (gunichar)-2) {
			*out++ = '?';
			in++;
			continue;
		}
		if (c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0)) {
			*out++ = '?';
		} else {
			int len = g_utf8_skip[*(const guchar *)in];
			memmove(out, in, (size_t)len);
			out += len;
		}
		in = g_utf8_next_char(in);
	}
	*out = '\0';
}

char *
amu_text_printable(const char *text)
{
	char *copy;

	if (text == NULL)
		return NULL;
	copy = g_strdup(text);
	sanitize_in_place(copy);
	return copy;
}

void
amu_text_sanitize_message(ProtobufCMessage *message)
{
	const ProtobufCMessageDescriptor *descriptor;

	if (message == NULL)
		return;
	descriptor = message->descriptor;
	for (unsigned int i = 0; i < descriptor->n_fields; i++) {
		const ProtobufCFieldDescriptor *field = &descriptor->fields[i];
		char *member = (char *)message + field->offset;
		gboolean repeated = field->label == PROTOBUF_C_LABEL_REPEATED;
		size_t n = repeated ? *(size_t *)((char *)message + field->quantifier_offset) : 1;
		void **items = repeated ? *(void ***)member : (void **)member;

		if (field->type != PROTOBUF_C_TYPE_STRING && field->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if (field->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
			uint32_t which = *(uint32_t *)((char *)message + field->quantifier_offset);
			if (which != field->id)
				continue;
		}
		for (size_t j = 0; items != NULL && j < n; j++) {
			if (items[j] == NULL)
				continue;
			if (field->type == PROTOBUF_C_TYPE_STRING && items[j] != (void *)protobuf_c_empty_string)
				sanitize_in_place(items[j]);
			else if (field->type == PROTOBUF_C_TYPE_MESSAGE)
				amu_text_sanitize_message(items[j]);
		}
	}
}
