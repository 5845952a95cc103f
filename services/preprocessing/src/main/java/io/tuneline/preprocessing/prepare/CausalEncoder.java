package io.tuneline.preprocessing.prepare;

import ai.djl.huggingface.tokenizers.Encoding;
import io.tuneline.engine.tokenize.AnswerMask;
import io.tuneline.engine.tokenize.ChatMessage;
import io.tuneline.engine.tokenize.ChatTemplate;
import io.tuneline.engine.tokenize.ModelTokens;
import it.unimi.dsi.fastutil.longs.LongArrayList;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;

/**
 * A causal example as input ids and labels ({@code -100} where no loss is taken).
 *
 * <ul>
 *   <li>Chat and instruction records, when the job or the base model has a chat template: the
 *       conversation (an instruction as one user and one assistant turn, as TRL's SFTTrainer turns
 *       prompt-completion data into a conversation) rendered by the template, which writes the
 *       model's own BOS, headers and end-of-turn tokens; only each assistant turn's content and the
 *       special token closing it are learned ({@link ChatTemplate#renderWithAnswers}). No
 *       end-of-sequence token is appended: the template's end-of-turn is what the model learns to
 *       stop with.
 *   <li>Without a template (MiniLM, the test GPT-2s): as before templates existed, an instruction's
 *       prompt and a newline are read, its completion learned; a chat is "role: content" turns of
 *       which only the assistant's content is learned; both end with the end-of-sequence token.
 *   <li>Plain text is all learned and ends with the end-of-sequence token; it starts with BOS when
 *       {@code tokenizer_config.json} says {@code add_bos_token}.
 * </ul>
 */
final class CausalEncoder {
    /** One example's tokens and labels. */
    record Encoded(long[] inputIds, long[] labels) {}

    private final ModelTokenizer tokenizer;
    private final Optional<ChatTemplate> template;

    CausalEncoder(ModelTokenizer tokenizer, Optional<ChatTemplate> template) {
        this.tokenizer = tokenizer;
        this.template = template;
    }

    /** Whether chats and instructions go through a chat template. */
    boolean templated() {
        return template.isPresent();
    }

    /** The chat template; only when {@link #templated()}. */
    ChatTemplate template() {
        return template.orElseThrow();
    }

    List<Encoded> encode(List<Example> batch) {
        Encoded[] out = new Encoded[batch.size()];
        List<Integer> rendered = new ArrayList<>();
        List<ChatTemplate.Rendered> conversations = new ArrayList<>();
        List<Integer> plain = new ArrayList<>();
        for (int i = 0; i < batch.size(); i++) {
            Example e = batch.get(i);
            if (template.isPresent() && !(e instanceof Example.Text)) {
                rendered.add(i);
                conversations.add(template.get().renderWithAnswers(messages(e)));
            } else {
                plain.add(i);
            }
        }
        Encoding[] encodings =
                tokenizer.encodeWithOffsets(
                        conversations.stream().map(ChatTemplate.Rendered::text).toList());
        for (int k = 0; k < encodings.length; k++) {
            ChatTemplate.Rendered r = conversations.get(k);
            long[] ids = encodings[k].getIds();
            out[rendered.get(k)] =
                    new Encoded(
                            ids,
                            AnswerMask.labels(
                                    r.text(), ids, encodings[k].getCharTokenSpans(), r.answers()));
        }
        encodePieces(batch, plain, out);
        return Arrays.asList(out);
    }

    static List<ChatMessage> messages(Example e) {
        if (e instanceof Example.Instruction in) {
            return List.of(
                    new ChatMessage("user", in.prompt()),
                    new ChatMessage("assistant", in.completion()));
        }
        if (e instanceof Example.Chat c) {
            return c.messages().stream().map(m -> new ChatMessage(m.role(), m.content())).toList();
        }
        throw new IllegalStateException("not a conversation: " + e);
    }

    /** Every piece of every untemplated example in one tokenizer call. */
    private void encodePieces(List<Example> batch, List<Integer> which, Encoded[] out) {
        if (which.isEmpty()) {
            return;
        }
        List<String> pieces = new ArrayList<>();
        List<boolean[]> learned = new ArrayList<>();
        for (int i : which) {
            List<String> p = new ArrayList<>();
            List<Boolean> l = new ArrayList<>();
            pieces(batch.get(i), p, l);
            pieces.addAll(p);
            boolean[] flags = new boolean[l.size()];
            for (int f = 0; f < flags.length; f++) {
                flags[f] = l.get(f);
            }
            learned.add(flags);
        }
        long[][] ids = tokenizer.encode(pieces, false);
        ModelTokens tokens = tokenizer.tokens();
        int at = 0;
        for (int k = 0; k < which.size(); k++) {
            LongArrayList input = new LongArrayList();
            LongArrayList labels = new LongArrayList();
            if (tokens.addBos() && batch.get(which.get(k)) instanceof Example.Text) {
                input.add(tokens.bos().orElseThrow().id());
                labels.add(SplitFile.IGNORE);
            }
            for (boolean learn : learned.get(k)) {
                for (long id : ids[at++]) {
                    input.add(id);
                    labels.add(learn ? id : SplitFile.IGNORE);
                }
            }
            if (tokenizer.eosId() >= 0) {
                input.add(tokenizer.eosId());
                labels.add(tokenizer.eosId());
            }
            out[which.get(k)] = new Encoded(input.toLongArray(), labels.toLongArray());
        }
    }

    /**
     * A causal example as pieces: plain text is all learned; an instruction's prompt is read and
     * its completion learned; a chat is "role: content" turns where only the assistant's content is
     * learned.
     */
    private static void pieces(Example e, List<String> pieces, List<Boolean> learned) {
        if (e instanceof Example.Text t) {
            pieces.add(t.text());
            learned.add(true);
        } else if (e instanceof Example.Instruction in) {
            pieces.add(in.prompt() + "\n");
            learned.add(false);
            pieces.add(in.completion());
            learned.add(true);
        } else if (e instanceof Example.Chat c) {
            boolean first = true;
            for (Example.Message m : c.messages()) {
                pieces.add((first ? "" : "\n") + m.role() + ": ");
                learned.add(false);
                pieces.add(m.content());
                learned.add(m.role().equals("assistant"));
                first = false;
            }
        } else {
            throw new IllegalStateException("not a causal example: " + e);
        }
    }
}
