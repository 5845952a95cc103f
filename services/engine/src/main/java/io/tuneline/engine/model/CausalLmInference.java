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
