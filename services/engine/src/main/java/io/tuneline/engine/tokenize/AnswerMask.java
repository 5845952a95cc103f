package io.tuneline.engine.tokenize;

import ai.djl.huggingface.tokenizers.jni.CharSpan;
import java.util.List;

/**
 * Labels for a rendered conversation: a token is learned when any of its characters lies in an
 * assistant span ({@link ChatTemplate#renderWithAnswers}), every other token gets -100, Hugging
 * Face's "no loss here" label. A token a BPE merge carries across the span's edge (">a" where a
 * template writes {@code <assistant>} right before the answer "a") is learned, as in transformers'
 * {@code return_assistant_tokens_mask}, which marks the tokens from {@code char_to_token(start)} to
 * {@code char_to_token(end - 1)}. The tokenizer reports token offsets in Unicode code points (the
 * tokenizers library's char offsets, as Python's {@code return_offsets_mapping}), while the spans
 * are Java char indices, so the spans are converted first (they differ after any character outside
 * the Basic Multilingual Plane, such as an emoji).
 */
public final class AnswerMask {
    /** Hugging Face's ignore index for labels. */
    public static final long IGNORE = -100;

    private AnswerMask() {}

    /**
     * @param text the rendered conversation the ids were encoded from (without special tokens added
     *     by the tokenizer: the template writes its own)
     * @param offsets each token's [start, end) in code points, as DJL's {@code
     *     Encoding.getCharTokenSpans()} gives them
     */
    public static long[] labels(
            String text, long[] ids, CharSpan[] offsets, List<ChatTemplate.Span> answers) {
        int[][] spans = new int[answers.size()][];
        for (int i = 0; i < spans.length; i++) {
            ChatTemplate.Span s = answers.get(i);
            spans[i] =
                    new int[] {text.codePointCount(0, s.start()), text.codePointCount(0, s.end())};
        }
        long[] labels = new long[ids.length];
        int k = 0;
        for (int t = 0; t < ids.length; t++) {
            labels[t] = IGNORE;
            CharSpan o = offsets[t];
            if (o == null) {
                continue;
            }
            int start = o.getStart();
            while (k < spans.length && spans[k][1] <= start) {
                k++;
            }
            if (k < spans.length && o.getEnd() > spans[k][0]) {
                labels[t] = ids[t];
            }
        }
        return labels;
    }
}
