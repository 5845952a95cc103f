package io.tuneline.engine.model;

import ai.djl.Model;
import io.tuneline.engine.model.gpt2.Gpt2Inference;
import io.tuneline.engine.model.gpt2.Gpt2LmModel;
import io.tuneline.engine.model.llama.LlamaInference;
import io.tuneline.engine.model.llama.LlamaLmModel;
import io.tuneline.engine.train.LmExample;

/**
 * What evaluation asks of a causal LM, whatever its family: the log-likelihood of an example's
 * scored tokens with next-token accuracy, and greedy answers. No dropout, no gradients.
 */
public interface CausalLmInference {

    /**
     * The scored tokens' log-likelihood and how many of them are the model's most likely next token
     * (argmax of the logits at the position before), for token accuracy.
     *
     * @param logLikelihood sum over scored tokens of {@code log p(token | earlier tokens)}
     * @param correct scored positions whose label equals the argmax of the preceding logits
     */
    record TokenStats(double logLikelihood, long tokens, long correct) {}

    /** Log-likelihood and argmax accuracy of the tokens whose label is not -100. */
    TokenStats tokenStats(LmExample example);

    /**
     * Greedy generation that stops after {@code stop} (included) or {@code maxNewTokens} tokens, or
     * where the model's positions run out; returns the new tokens only.
     */
    long[] greedyUntil(long[] prompt, int maxNewTokens, long stop);

    /** Picks the next token from the next-token logits (one value per vocabulary entry). */
    @FunctionalInterface
    interface TokenChooser {
        long choose(float[] logits);
    }

    /**
     * Generation one token at a time, for serving: {@code chooser} picks each new token from the
     * next-token logits (argmax gives {@link #greedyUntil}'s tokens), and {@code accepted} hears it
     * at once (a stream can send it before the next is computed); stops after a token for which
     * {@code accepted} returns false (that token included), after {@code maxNewTokens}, or where
     * the model's positions run out. Returns the new tokens only.
     */
    long[] generate(
            long[] prompt,
            int maxNewTokens,
            TokenChooser chooser,
            java.util.function.LongPredicate accepted);

    /**
     * One sequence of a batched generation: its prompt, how many tokens it may add, how each is
     * picked and who hears it ({@link #generate}'s arguments).
     */
    record Sequence(
            long[] prompt,
            int maxNewTokens,
            TokenChooser chooser,
            java.util.function.LongPredicate accepted) {}

    /**
     * {@link #generate} for several sequences at once; each gets the tokens it would get alone
     * (greedy: the same tokens), in the order given. A family that decodes batches together (the
     * Llama family, through its key/value cache, prompts padded on the left) runs one forward pass
     * per step for all sequences still going, and a sequence leaves the batch when it stops; this
     * default generates them one after the other.
     */
    default java.util.List<long[]> generateAll(java.util.List<Sequence> sequences) {
        java.util.List<long[]> out = new java.util.ArrayList<>();
        for (Sequence s : sequences) {
            out.add(generate(s.prompt(), s.maxNewTokens(), s.chooser(), s.accepted()));
        }
        return out;
    }

    /**
     * The first index of the largest logit: torch's {@code argmax} on the same values, so greedy
     * decoding picks the same token whether the logits are compared on the device or here.
     */
    static long argmax(float[] logits) {
        int best = 0;
        for (int v = 1; v < logits.length; v++) {
            if (logits[v] > logits[best]) {
                best = v;
            }
        }
        return best;
    }

    /** The longest sequence the model takes. */
    int maxPositions();

    /** The inference for the model {@link CausalLmCheckpoint#load} returned. */
    static CausalLmInference of(Model model) {
        if (model.getBlock() instanceof Gpt2LmModel) {
            return new Gpt2Inference(model);
        }
        if (model.getBlock() instanceof LlamaLmModel) {
            return new LlamaInference(model);
        }
        throw new IllegalArgumentException(
                "the model's block is not a causal LM: " + model.getBlock().getClass());
    }
}
