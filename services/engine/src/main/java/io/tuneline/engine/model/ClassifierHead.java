package io.tuneline.engine.model;

import java.util.Locale;

/**
 * Which sentence vector a {@link SequenceClassifier} classifies, and so which Hugging Face layout
 * its export has.
 */
public enum ClassifierHead {
    /**
     * A linear layer ({@code classifier}) on the attention-masked mean of the last hidden states,
     * the pooling all-MiniLM-L6-v2 was trained with (sentence-transformers); exported as a {@code
     * BertModel}/{@code RobertaModel} directory plus {@code classifier.*}.
     */
    MEAN("mean"),
    /**
     * The head of transformers' {@code BertForSequenceClassification} ({@code modeling_bert.py}):
     * the first token's ([CLS]) last hidden state through the pooler ({@code pooler.dense}, tanh),
     * dropout, then {@code classifier}; for RoBERTa, {@code RobertaClassificationHead} ({@code
     * modeling_roberta.py}: the {@code <s>} state, dropout, {@code classifier.dense}, tanh,
     * dropout, {@code classifier.out_proj}; RoBERTa's classifier has no pooler). Dropout is {@code
     * classifier_dropout}, or {@code hidden_dropout_prob} when that is unset. Under prompt tuning
     * and P-tuning the first position is the first virtual token, as under PEFT. Exported as a
     * standard {@code BertForSequenceClassification} / {@code RobertaForSequenceClassification}
     * directory.
     */
    CLS_POOLER("cls_pooler");

    private final String jobName;

    ClassifierHead(String jobName) {
        this.jobName = jobName;
    }

    /** The name a job gives it ({@code hyperparameters.classifier_head}). */
    public String jobName() {
        return jobName;
    }

    /**
     * The head a job names, {@code mean} or {@code cls_pooler} (case-insensitive).
     *
     * @throws IllegalArgumentException naming the accepted values
     */
    public static ClassifierHead parse(String name) {
        String n = name.strip().toLowerCase(Locale.ROOT);
        for (ClassifierHead h : values()) {
            if (h.jobName.equals(n)) {
                return h;
            }
        }
        throw new IllegalArgumentException(
                "classifier_head '" + name + "' is not one of mean, cls_pooler");
    }

    /**
     * The head a job gets when it names none: Hugging Face's where it starts from pretrained
     * weights, the mean head otherwise. A BERT checkpoint with a pooler ({@code pooler.dense}) gets
     * {@link #CLS_POOLER}; one without (the built-in all-MiniLM-L6-v2, whose ONNX export has no
     * pooler: a fresh pooler would stay random and frozen under LoRA, as PEFT's {@code SEQ_CLS}
     * trains {@code classifier} only) gets {@link #MEAN}. RoBERTa's head has no pretrained part
     * (its {@code classifier.dense} is part of the head and trains with it), so a RoBERTa base gets
     * {@link #CLS_POOLER}.
     */
    public static ClassifierHead defaultFor(String modelType, boolean hasPooler) {
        return modelType.equals("roberta") || hasPooler ? CLS_POOLER : MEAN;
    }
}
